"""End to end through the CLI on a tiny synthetic set: synth, train (all heads), resume, eval, predict, bad
input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import load_checkpoint, save_checkpoint
from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.evaluate import coco_results, oks_ap
from deepnotes.pose.model import PoseConfig
from deepnotes.pose.train import TrainConfig, train

runner = CliRunner()
SMALL = ["--input-size", "64,48", "--heatmap-size", "8,6", "--width", "4", "--depth", "10",
         "--batch-size", "12", "--device", "cpu", "--lr", "3e-3"]


def _train(data, out, head, epochs, *extra):
    args = ["pose", "train", "--head", head, "--train", str(data["train"]), "--val", str(data["val"]),
            "--out", str(out), "--epochs", str(epochs), *SMALL, *extra]
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for head in ("rle", "heatmap", "regression"):
        res = _train(tiny_data, root / head, head, 2)
        assert res.exit_code == 0, res.output
        out[head] = root / head
    return out


def test_synth_command_writes_coco(tmp_path):
    res = runner.invoke(app, ["pose", "synth", str(tmp_path / "d"), "--n", "3", "--size", "40,40"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert len(data["images"]) == 3 and len(list((tmp_path / "d" / "images").glob("*.png"))) == 3


def test_train_writes_metrics_and_checkpoint(runs):
    for head, run in runs.items():
        metrics = json.loads((run / "metrics.json").read_text())
        assert [m["epoch"] for m in metrics] == [1, 2]
        for key in ("train_loss", "val_AP", "val_PCK@0.1", "val_mean_error_px", "skipped_train",
                    "unreadable_train"):
            assert key in metrics[-1]
        _, meta = load_checkpoint(run / "checkpoint.safetensors")
        assert meta["head"] == head and meta["epoch"] == 2
    rle = json.loads((runs["rle"] / "metrics.json").read_text())[-1]
    assert {"train_log_sigma", "train_flow", "train_base"} <= set(rle)


def test_resume_continues_bit_for_bit(tiny_data, runs, tmp_path):
    """Kill a 2-epoch run after its first checkpoint, resume it: same weights as the uninterrupted run."""

    def crash_after_first_epoch(msg):
        if msg.startswith("epoch 1:"):
            raise KeyboardInterrupt

    # the backbone `pose train` picks for 64x48 crops: a 2x stem and 4 stages
    config = PoseConfig(head="rle", input_hw=(64, 48), heatmap_hw=(8, 6), depth=10, width=4,
                        deconv_channels=16, stem_stride=2, stages=4)
    tc = TrainConfig(epochs=2, batch_size=12, lr=3e-3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data["train"], tiny_data["val"], tmp_path / "r", config, tc, torch.device("cpu"),
              log=crash_after_first_epoch)
    assert len(json.loads((tmp_path / "r" / "metrics.json").read_text())) == 1
    res = _train(tiny_data, tmp_path / "r", "rle", 2, "--resume")
    assert res.exit_code == 0 and "resuming" in res.output, res.output
    a, _ = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    b, _ = load_checkpoint(runs["rle"] / "checkpoint.safetensors")
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_refuses_to_overwrite_or_resume_another_head(tiny_data, runs):
    res = _train(tiny_data, runs["rle"], "rle", 3)
    assert res.exit_code == 2 and "--resume" in res.output
    res = _train(tiny_data, runs["rle"], "heatmap", 3, "--resume")
    assert res.exit_code == 2 and "head='rle', not 'heatmap'" in res.output
    # the restored optimizer and schedule would silently keep the old lr; another batch size reorders the data
    res = _train(tiny_data, runs["rle"], "rle", 3, "--resume", "--lr", "1e-4")
    assert res.exit_code == 2 and "lr=0.003, not 0.0001" in res.output and "--lr" in res.output
    res = _train(tiny_data, runs["rle"], "rle", 3, "--resume", "--batch-size", "6")
    assert res.exit_code == 2 and "batch_size=12, not 6" in res.output


def test_val_images_has_its_own_folder_and_an_empty_val_set_is_an_error(tiny_data, tmp_path):
    # --images names the training folder; the val file's images live beside it, elsewhere
    train_images = tiny_data["root"] / "train" / "images"
    res = _train(tiny_data, tmp_path / "a", "regression", 1, "--images", str(train_images))
    assert res.exit_code == 2 and "no usable person annotations to validate on" in res.output
    assert "missing_image" in res.output and "--val-images" in res.output
    res = _train(tiny_data, tmp_path / "b", "regression", 1, "--images", str(train_images),
                 "--val-images", str(tiny_data["root"] / "val" / "images"))
    assert res.exit_code == 0, res.output


def test_eval_writes_metrics_and_scored_results(tiny_data, runs):
    for head, run in runs.items():
        res = runner.invoke(app, ["pose", "eval", str(run), "--ann", str(tiny_data["val"]),
                                  "--device", "cpu"])
        assert res.exit_code == 0, res.output
        ev = json.loads((run / "eval.json").read_text())
        for key in ("AP", "AP50", "AP75", "PCK@0.05", "PCK@0.1", "mean_error_px"):
            assert key in ev
        assert 0 <= ev["PCK@0.05"] <= ev["PCK@0.1"] <= 1 and ev["AP75"] <= ev["AP50"]
        results = json.loads((run / "results.json").read_text())
        assert len(results) == ev["persons"] - ev["nms_suppressed"] and len(results[0]["keypoints"]) == 51
        scores = [r["score"] for r in results]
        if head == "regression":
            assert set(scores) == {1.0}
        if head == "rle":  # the head's own confidence: varies per person
            assert len(set(scores)) > 1
        # mmpose's rescoring with the ground-truth boxes' score 1: the mean joint score above 0.2 (else 0)
        for r in results:
            joint = [v for v in r["keypoints"][2::3] if v > 0.2]
            assert r["score"] == pytest.approx(sum(joint) / len(joint) if joint else 0.0, abs=1e-3)
        # the reported AP is pycocotools' AP on exactly these results
        from deepnotes.pose.evaluate import oks_ap as recompute
        assert recompute(load_coco(tiny_data["val"]).samples, results)["AP"] == pytest.approx(ev["AP"])


def test_oks_ap_is_one_for_ground_truth(tiny_data):
    samples = load_coco(tiny_data["val"]).samples
    import numpy as np

    from deepnotes.pose.evaluate import Predictions

    preds = Predictions(np.stack([s.keypoints[:, :2] for s in samples]), np.ones((len(samples), 17)),
                        np.arange(len(samples)))
    assert oks_ap(samples, coco_results(samples, preds)) == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0}
    preds.coords = preds.coords + 25.0  # far off: no match at any threshold
    assert oks_ap(samples, coco_results(samples, preds))["AP50"] == 0.0


def test_persons_on_unreadable_images_are_reported_not_scored_as_misses(tiny_data, runs, tmp_path,
                                                                         monkeypatch):
    import numpy as np

    from deepnotes.pose import evaluate as ev_mod
    from deepnotes.pose.train import load_run

    samples = load_coco(tiny_data["val"]).samples
    lost = samples[0].image_id
    keep = np.array([i for i, s in enumerate(samples) if s.image_id != lost])

    def oracle(model, dataset, device, batch_size=64, workers=0, flip=False):  # perfect on readable images
        coords = np.stack([samples[i].keypoints[:, :2] for i in keep])
        return ev_mod.Predictions(coords, np.ones((len(keep), 17)), keep, unreadable=len(samples) - len(keep))

    monkeypatch.setattr(ev_mod, "predict", oracle)
    got, _ = ev_mod.evaluate(load_run(runs["rle"], "cpu"), samples, torch.device("cpu"))
    assert got["unreadable_images"] == len(samples) - len(keep) > 0 and got["persons"] == len(keep)
    assert got["AP"] == 1.0  # the lost image's persons are not counted as misses


def test_predict_draws_and_prints_scores(tiny_data, runs, tmp_path):
    image = tiny_data["root"] / "val" / "images" / "0001_000000.png"
    out = tmp_path / "drawn.png"
    res = runner.invoke(app, ["pose", "predict", str(runs["rle"]), str(image), "--box", "5,5,40,50",
                              "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "left_wrist" in res.output and "score" in res.output
    bad = runner.invoke(app, ["pose", "predict", str(runs["rle"]), str(image), "--box", "5,5,0,50",
                              "--out", str(out)])
    assert bad.exit_code == 2 and "--box" in bad.output


def test_bad_input_errors(tiny_data, runs, tmp_path):
    broken = tmp_path / "ann.json"
    broken.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                                  "annotations": [{"image_id": 1, "keypoints": [1, 2]}]}))
    res = runner.invoke(app, ["pose", "eval", str(runs["rle"]), "--ann", str(broken)])
    assert res.exit_code == 2 and "annotations[0].keypoints" in res.output
    other = tmp_path / "other"
    other.mkdir()
    save_checkpoint(other / "checkpoint.safetensors", {"w": torch.zeros(1)}, {"model": "tsm"})
    res = runner.invoke(app, ["pose", "eval", str(other), "--ann", str(tiny_data["val"])])
    assert res.exit_code == 2 and "not a pose model" in res.output
    res = _train(tiny_data, tmp_path / "x", "rle", 1, "--input-size", "64,48,3")  # not H,W or one number
    assert res.exit_code == 2 and "--input-size" in res.output
    # refused while parsing, before any data is read
    res = _train(tiny_data, tmp_path / "x", "transformer", 1)
    assert res.exit_code == 2 and "heatmap" in res.output and "regression" in res.output
    assert "persons" not in res.output
    res = _train(tiny_data, tmp_path / "y", "heatmap", 1, "--heatmap-size", "10,10")
    assert res.exit_code == 2 and "power of two" in res.output


def test_config_file_flags_override_and_resume_reads_the_stored_config(tiny_data, tmp_path):
    cfg = tmp_path / "pose.yaml"
    cfg.write_text(f"train: {tiny_data['train']}\nval: {tiny_data['val']}\nout: {tmp_path / 'c'}\n"
                   "head: regression\ninput_size: 64,48\ndepth: 10\nwidth: 4\nbatch_size: 12\nlr: 0.003\n"
                   "epochs: 1\ndevice: cpu\n")
    res = runner.invoke(app, ["pose", "train", "--config", str(cfg), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "c" / "config.json").read_text())
    assert stored["head"] == "regression" and stored["input_size"] == [64, 48] and stored["width"] == 4
    # --resume with only --out and more epochs: every other setting comes from the run's config.json
    res = runner.invoke(app, ["pose", "train", "--out", str(tmp_path / "c"), "--resume", "--epochs", "2"])
    assert res.exit_code == 0 and "resuming" in res.output, res.output
    assert [m["epoch"] for m in json.loads((tmp_path / "c" / "metrics.json").read_text())] == [1, 2]
    cfg.write_text(cfg.read_text() + "learning_rate: 0.1\n")
    res = runner.invoke(app, ["pose", "train", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown key 'learning_rate'" in res.output and "lr" in res.output
