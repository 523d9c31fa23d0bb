"""Per-video score dumps (`video eval --dump`) and late fusion of two dumps (`video fuse`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepnotes.video.cli import app
from deepnotes.video.config import TrainConfig
from deepnotes.video.data import make_loader
from deepnotes.video.data.lists import read_list
from deepnotes.video.data.pipeline import make_dataset
from deepnotes.video.dumps import ScoreDump, read_dump, write_dump
from deepnotes.video.evaluation import evaluate, evaluate_loader, score_dump
from deepnotes.video.models import build_model
from deepnotes.video.training import train
from deepnotes.video.two_stream.flow import extract_list
from deepnotes.video.two_stream.fuse import check_same_videos, dump_metrics, fuse, fuse_files
from deepnotes.video.two_stream.synth import write_appearance_motion

runner = CliRunner()


@pytest.fixture(scope="module")
def run(motion_data, tiny_train_kwargs, tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "run"
    train(TrainConfig(model="tsn", train=str(motion_data["train"]), out=str(out), epochs=1, seed=3,
                      **tiny_train_kwargs))
    return out


def _dump(paths, labels, scores, unreadable=None, source="d"):
    scores = np.asarray(scores, dtype=np.float64)
    bad = np.zeros(len(paths), bool) if unreadable is None else np.asarray(unreadable)
    scores[bad] = np.nan
    return ScoreDump(list(paths), np.asarray(labels, np.int64), scores, bad, source)


def test_eval_dump_lists_every_video_in_order_with_unreadable_ones_flagged(run, data_with_bad_video,
                                                                           tmp_path):
    val = data_with_bad_video["val"]
    root = data_with_bad_video["root"]
    res = evaluate(run, val, root=root, clips=2, workers=0, device="cpu", dump=tmp_path / "s.jsonl")
    records = read_list(val, root)
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(r.path) for r in records]
    assert [r["label"] for r in rows] == [r.label for r in records]
    assert rows[3]["scores"] is None and rows[3]["unreadable"] and rows[3]["path"].endswith("corrupt.mp4")
    good = [r for i, r in enumerate(rows) if i != 3]
    assert all(not r["unreadable"] and len(r["scores"]) == 8 for r in good)
    np.testing.assert_allclose([sum(r["scores"]) for r in good], 1.0, atol=1e-6)  # probabilities
    # the dump's scores are the ones eval's totals come from
    dump = read_dump(tmp_path / "s.jsonl")
    m = dump_metrics(dump)
    assert res["skipped"] == 1 and m["unreadable"] == 1 and m["n"] == res["n"] == len(records) - 1
    for key in ("top1", "top5", "mean_class_acc", "loss"):
        assert m[key] == pytest.approx(res[key], abs=1e-6)
    # .npz holds the same numbers (float32)
    evaluate(run, val, root=root, clips=2, workers=0, device="cpu", dump=tmp_path / "s.npz")
    npz = read_dump(tmp_path / "s.npz")
    assert npz.paths == dump.paths and (npz.labels == dump.labels).all()
    assert (npz.unreadable == dump.unreadable).all() and np.isnan(npz.scores[3]).all()
    np.testing.assert_allclose(npz.scores[~npz.unreadable], dump.scores[~dump.unreadable], atol=1e-6)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:  # plain arrays: no pickle needed
        assert z["scores"].shape == (len(records), 8) and z["paths"].dtype.kind == "U"


def test_dump_scores_equal_the_model_run_by_hand(run, motion_data, tmp_path):
    """An independent path: the checkpoint's model on the dataset's clips, softmax averaged over views."""
    from deepnotes.video.data.pipeline import eval_config
    from deepnotes.video.evaluation import load_run

    evaluate(run, motion_data["val"], clips=2, workers=0, device="cpu", dump=tmp_path / "d.npz")
    dump = read_dump(tmp_path / "d.npz")
    model, meta = load_run(run, torch.device("cpu"))
    ds = make_dataset(eval_config(meta["model"], meta["data"], workers=0), read_list(motion_data["val"]),
                      False, num_clips=2)
    with torch.no_grad():
        for i in (0, 5):
            clip = ds[i]["clip"]  # (V, C, T, H, W)
            want = torch.softmax(model(clip), 1).mean(0).numpy()
            np.testing.assert_allclose(dump.scores[i], want, atol=1e-6)


def test_a_dump_with_another_suffix_is_refused_before_evaluating(run, motion_data, tmp_path):
    fresh = tmp_path / "fresh.txt"
    fresh.write_text(motion_data["val"].read_text())
    with pytest.raises(ValueError, match=r"\.jsonl .* or \.npz"):
        evaluate(run, fresh, root=motion_data["val"].parent, workers=0, device="cpu",
                 dump=tmp_path / "s.json")
    assert not (run / "eval" / "fresh.json").exists()  # refused before the evaluation ran
    res = runner.invoke(app, ["eval", str(run), "--list", str(motion_data["val"]), "--dump",
                              str(tmp_path / "s.csv"), "--workers", "0", "--device", "cpu"])
    assert res.exit_code == 2 and "error:" in res.output and ".npz" in res.output


def test_fusion_is_the_weighted_average_of_the_probabilities_and_scored_independently():
    rng = np.random.default_rng(0)
    p1, p2 = rng.dirichlet(np.ones(4), 6), rng.dirichlet(np.ones(4), 6)
    labels = [0, 1, 2, 3, 0, 1]
    names = [f"/a/v{i}.mp4" for i in range(6)]
    a = _dump(names, labels, p1, source="rgb")
    b = _dump([f"/flow/v{i}" for i in range(6)], labels, p2, source="flow")  # flow folders pair by name
    fused = fuse(a, b, (1.0, 1.5))
    want = (1.0 * p1 + 1.5 * p2) / 2.5
    np.testing.assert_allclose(fused.scores, want, atol=1e-12)
    m = dump_metrics(fused)
    assert m["top1"] == pytest.approx(np.mean(want.argmax(1) == labels))
    top5 = np.argsort(-want, 1)[:, :5]
    assert m["top5"] == pytest.approx(np.mean([lab in row for lab, row in zip(labels, top5, strict=True)]))
    recall = [np.mean(want.argmax(1)[np.array(labels) == c] == c) for c in range(4)]
    assert m["mean_class_acc"] == pytest.approx(np.mean(recall))
    assert m["loss"] == pytest.approx(-np.mean(np.log(want[np.arange(6), labels])))


def test_unreadable_rows_stay_and_are_left_out_of_every_score(tmp_path):
    rng = np.random.default_rng(1)
    labels = [0, 1, 2, 0]
    names = [f"v{i}.mp4" for i in range(4)]
    a = _dump(names, labels, rng.dirichlet(np.ones(3), 4), [False, True, False, False])
    b = _dump(names, labels, rng.dirichlet(np.ones(3), 4), [False, False, False, True])
    write_dump(tmp_path / "a.jsonl", a)
    write_dump(tmp_path / "b.npz", b)
    res = fuse_files(tmp_path / "a.jsonl", tmp_path / "b.npz", (1, 1), out=tmp_path / "f.jsonl")
    assert res["first"]["n"] == res["second"]["n"] == res["fusion"]["n"] == 2  # videos 0 and 2 only
    assert res["fusion"]["unreadable"] == 2
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["unreadable"] for r in rows] == [False, True, False, True]
    assert rows[1]["scores"] is None and len(rows[0]["scores"]) == 3


@pytest.mark.parametrize("change, message", [
    (lambda p, lab: (p[:3], lab[:3]), r"a.jsonl lists 4 videos but .*b.jsonl lists 3"),
    (lambda p, lab: ([p[0], p[2], p[1], p[3]], [lab[0], lab[2], lab[1], lab[3]]),
     r"first mismatch at video 2: .*a.jsonl has /d/v1.mp4 \(label 1\) but .*b.jsonl has /d/v2.mp4"),
    (lambda p, lab: (p, [0, 1, 2, 2]), r"first mismatch at video 4: .*label 3.*label 2"),
])
def test_dumps_of_other_videos_name_the_first_mismatch(tmp_path, change, message):
    paths, labels = [f"/d/v{i}.mp4" for i in range(4)], [0, 1, 2, 3]
    write_dump(tmp_path / "a.jsonl", _dump(paths, labels, np.full((4, 4), 0.25)))
    p2, l2 = change(paths, labels)
    write_dump(tmp_path / "b.jsonl", _dump(p2, l2, np.full((len(p2), 4), 0.25)))
    with pytest.raises(ValueError, match=message):
        fuse_files(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    with pytest.raises(ValueError, match="over 4 classes but .* over 5"):
        check_same_videos(_dump(paths, labels, np.full((4, 4), 0.25)),
                          _dump(paths, labels, np.full((4, 5), 0.2)))


def test_a_malformed_dump_names_the_line(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"path": "a.mp4", "label": 0, "scores": [1.0]}\n{"path": "b.mp4"}\n')
    with pytest.raises(ValueError, match=r"x.jsonl:2: expected"):
        read_dump(tmp_path / "x.jsonl")
    with pytest.raises(FileNotFoundError, match="video eval RUN --list L --dump FILE"):
        read_dump(tmp_path / "none.jsonl")


def test_two_stream_late_fusion_of_each_streams_dump_is_the_two_stream_model(tmp_path):
    """A two-stream model's output is the late fusion of its streams: fusing the dumps of its RGB and flow
    streams, as from two runs, gives the model's own scores."""
    paths = write_appearance_motion(tmp_path / "am", 2, 1, frames=6, size=16, seed=0)
    extract_list(paths["val"], tmp_path / "flow", method="dis", formats=("npz",), show_progress=False)
    cfg = TrainConfig(model="two_stream", modality="two_stream", train=str(paths["train"]), out="",
                      val=str(paths["val"]), flow_val=str(tmp_path / "flow/flow_list.txt"), new_length=2,
                      segments=2, input_size=16, depth=10, width=4, stem_stride=1, workers=0)
    torch.manual_seed(0)
    model = build_model("two_stream", 4, num_segments=2, depth=10, width=4, stem_stride=1, dropout=0.0,
                        new_length=2, fusion="weighted:1,1.5").eval()
    records = read_list(paths["val"])
    loader = make_loader(make_dataset(cfg, records, False), 2, False)
    dumps = {}
    for view, net in (("both", model), ("rgb", model.view_model("rgb")), ("flow", model.view_model("flow"))):
        scores: dict = {}
        evaluate_loader(net, loader, 4, torch.device("cpu"), scores=scores)
        dumps[view] = score_dump(records, scores, 4)
    fused = fuse(dumps["rgb"], dumps["flow"], (1.0, 1.5))
    np.testing.assert_allclose(fused.scores, dumps["both"].scores, atol=1e-6)


def test_cli_eval_dump_then_fuse(run, motion_data, tmp_path):
    for name, clips in (("one.jsonl", "1"), ("two.npz", "2")):
        res = runner.invoke(app, ["eval", str(run), "--list", str(motion_data["val"]), "--clips", clips,
                                  "--dump", str(tmp_path / name), "--workers", "0", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        assert f"per-video scores: {tmp_path / name}" in res.output
    res = runner.invoke(app, ["fuse", str(tmp_path / "one.jsonl"), str(tmp_path / "two.npz"), "--weights",
                              "1,2", "--out", str(tmp_path / "f.npz")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "top1" in lines[0] and "mean class acc" in lines[0]
    assert lines[1].startswith(str(tmp_path / "one.jsonl")) and lines[3].startswith("fusion 1:2")
    expect = fuse(read_dump(tmp_path / "one.jsonl"), read_dump(tmp_path / "two.npz"), (1, 2))
    m = dump_metrics(expect)
    assert lines[3].split()[2:5] == [f"{m['top1']:.4f}", f"{m['top5']:.4f}", f"{m['mean_class_acc']:.4f}"]
    np.testing.assert_allclose(read_dump(tmp_path / "f.npz").scores, expect.scores, atol=1e-6)
    bad = runner.invoke(app, ["fuse", str(tmp_path / "one.jsonl"), str(tmp_path / "two.npz"), "--weights",
                              "1,x"])
    assert bad.exit_code == 2 and "must be numbers" in bad.output
