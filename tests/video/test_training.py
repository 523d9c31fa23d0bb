import json
import shutil

import cv2
import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import load_checkpoint, save_checkpoint
from deepnotes.video import TrainConfig, evaluate, predict, train
from deepnotes.video import training as training_mod
from deepnotes.video.data import VideoReadError, read_video
from deepnotes.video.data.lists import ListError


@pytest.fixture(scope="module")
def trained_run(motion_data, tiny_train_kwargs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="tsm", train=str(motion_data["train"]), val=str(motion_data["val"]), out=str(out),
                      epochs=2, **tiny_train_kwargs)
    return out, train(cfg)


def test_train_writes_metrics_config_and_checkpoint(trained_run):
    out, metrics = trained_run
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert [m["epoch"] for m in metrics] == [1, 2]  # 1-based epochs, global steps (4 per epoch)
    assert [m["step"] for m in metrics] == [4, 8]
    for m in metrics:
        assert {"loss", "top1", "top5", "mean_class_acc", "train_loss", "train_skipped"} <= set(m)
        assert 0 <= m["top1"] <= m["top5"] <= 1
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"] + 0.5
    state, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["model"] == "tsm" and meta["epoch"] == 2 and len(meta["classes"]) == 8
    assert json.loads((out / "config.json").read_text())["model"] == "tsm"


def test_resume_after_a_crash_gives_the_same_weights(motion_data, tiny_train_kwargs, trained_run, tmp_path,
                                                     monkeypatch):
    out = tmp_path / "crashed"
    cfg = TrainConfig(model="tsm", train=str(motion_data["train"]), val=str(motion_data["val"]), out=str(out),
                      epochs=2, **tiny_train_kwargs)
    real = training_mod.set_epoch

    def crash_in_second_epoch(loader, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        real(loader, epoch)

    monkeypatch.setattr(training_mod, "set_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(training_mod, "set_epoch", real)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)
    cfg.resume = True
    metrics = train(cfg)
    assert [m["epoch"] for m in metrics] == [1, 2]
    ref, _ = load_checkpoint(trained_run[0] / "checkpoint.safetensors")
    got, _ = load_checkpoint(out / "checkpoint.safetensors")
    for k, v in ref["model"].items():
        assert torch.allclose(v.float(), got["model"][k].float(), atol=1e-6), k
    cfg.model = "tsn"
    with pytest.raises(ValueError, match="model='tsm'.*not 'tsn'"):
        train(cfg)


def test_unreadable_videos_are_skipped_counted_and_reported(data_with_bad_video, tiny_train_kwargs, tmp_path):
    d = data_with_bad_video
    cfg = TrainConfig(model="tsn", train=str(d["train"]), val=str(d["val"]), root=str(d["root"]),
                      out=str(tmp_path / "run"), epochs=1, **tiny_train_kwargs)
    (m,) = train(cfg)
    assert m["train_skipped"] == 1 and m["val_skipped"] == 1
    res = evaluate(tmp_path / "run", d["val"], root=d["root"], workers=0, device="cpu")
    assert res["skipped"] == 1 and res["skipped_paths"] == [str(d["bad"])] and res["n"] == 7
    assert (tmp_path / "run" / "eval" / "val-confusion.png").is_file()
    with pytest.raises(VideoReadError, match="corrupt.mp4"):
        predict(tmp_path / "run", d["bad"], device="cpu")


def test_eval_views_and_predict(trained_run, motion_data):
    out, _ = trained_run
    res = evaluate(out, motion_data["val"], clips=2, crops=3, workers=0, device="cpu")
    assert res["n"] == 8 and res["views"] == {"clips": 2, "crops": 3}
    assert sum(map(sum, res["confusion"])) == 8
    video = next((motion_data["train"].parent / "videos" / "move_left").glob("*.mp4"))
    top = predict(out, video, device="cpu")
    assert len(top) == 5 and all(a[1] >= b[1] for a, b in zip(top, top[1:], strict=False))
    assert 0 < sum(s for _, s in top) <= 1 + 1e-6


def test_predict_on_an_mmaction2_rawframes_folder(trained_run, motion_data, tmp_path):
    """A frames folder as mmaction2's build_rawframes leaves it (img_ beside flow_x_/flow_y_ images) gives the
    prediction of the video it was extracted from."""
    out, _ = trained_run
    video = next((motion_data["train"].parent / "videos" / "move_left").glob("*.mp4"))
    frames = read_video(video)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"img_{i:05d}.png"), f[..., ::-1])
        for comp in "xy":  # flow images are never read as RGB frames
            cv2.imwrite(str(folder / f"flow_{comp}_{i:05d}.jpg"), f[..., 0])
    from_video = dict(predict(out, video, device="cpu"))
    run2 = tmp_path / "run"  # the same run, its frames named .png (lossless, so both read the same pixels)
    shutil.copytree(out, run2)
    state, meta = load_checkpoint(out / "checkpoint.safetensors")
    meta["data"]["frame_template"] = "img_{:05d}.png"
    save_checkpoint(run2 / "checkpoint.safetensors", state, meta)
    from_frames = dict(predict(run2, folder, device="cpu"))
    assert from_frames.keys() == from_video.keys()
    for name, p in from_video.items():
        assert from_frames[name] == pytest.approx(p, abs=1e-4)


def test_flip_map_outside_the_class_range_names_the_file(tmp_path):
    path = tmp_path / "flip_map.json"
    path.write_text(json.dumps({"0": 1, "1": 0, "2": 9, "9": 2}))
    cfg = TrainConfig(model="tsn", train=str(tmp_path / "train.txt"), out=str(tmp_path / "run"),
                      flip_map=str(path))
    with pytest.raises(ListError, match=r"flip_map.json: entry 2 -> 9 is outside the class range \[0, 4\)"):
        training_mod.flip_map(cfg, 4)
    assert training_mod.flip_map(cfg, 10) == {0: 1, 1: 0, 2: 9, 9: 2}


def test_one_way_flip_map_is_refused(tmp_path):
    path = tmp_path / "flip_map.json"
    path.write_text(json.dumps({"0": 1, "1": 9}))  # flip(flip(0)) would be 9
    cfg = TrainConfig(model="tsn", train=str(tmp_path / "train.txt"), out=str(tmp_path / "run"),
                      flip_map=str(path))
    one_way = r"flip_map.json: entry 0 -> 1 has no way back \(1 -> 9\).*add \"1\": 0"
    with pytest.raises(ListError, match=one_way):
        training_mod.flip_map(cfg, 10)


def test_cli_train_eval_predict_and_errors(motion_data, trained_run, tmp_path):
    runner = CliRunner()
    out, _ = trained_run
    res = runner.invoke(app, ["video", "eval", str(out), "--list", str(motion_data["val"]), "--workers", "0",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "top1" in res.output and "confusion matrix" in res.output
    video = next((motion_data["train"].parent / "videos" / "turn_cw").glob("*.mp4"))
    res = runner.invoke(app, ["video", "predict", str(out), str(video), "--device", "cpu"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 5
    bad = tmp_path / "bad.txt"
    bad.write_text("videos/move_left/move_left_train_0000.mp4 0\n"
                   "videos/move_left/move_left_train_0001.mp4 99\n")
    res = runner.invoke(app, ["video", "train", "--model", "tsm", "--train", str(bad), "--out",
                              str(tmp_path / "r"), "--root", str(motion_data["train"].parent),
                              "--classes", str(motion_data["classes"])])
    assert res.exit_code == 2 and "bad.txt:2" in res.output and "label 99" in res.output
    res = runner.invoke(app, ["video", "predict", str(out), str(tmp_path / "nope.mp4")])
    assert res.exit_code == 2 and "nope.mp4" in res.output
    res = runner.invoke(app, ["video", "train", "--model", "nope", "--train", str(motion_data["train"]),
                              "--out", str(tmp_path / "r2")], env={"COLUMNS": "300"})
    # refused at parse time, before any data is read, listing the registry's names
    assert res.exit_code == 2 and "'nope' is not one of" in res.output and "'i3d_full'" in res.output
    assert not (tmp_path / "r2").exists()


def test_cli_synth(tmp_path):
    res = CliRunner().invoke(app, ["video", "synth", "scene", str(tmp_path / "s"), "--n-per-class", "1",
                                   "--val-per-class", "1", "--frames", "4", "--size", "16"])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "s" / "train.txt").read_text().splitlines()) == 8


def test_loader_workers_and_shards_give_the_same_samples(motion_data):
    """Augmentation depends on (seed, epoch, index) only: 0 or 2 workers, 1 or 2 shards, same clips."""
    from deepnotes.video.data import make_loader, read_list, set_epoch
    from deepnotes.video.training import make_dataset

    cfg = TrainConfig(model="tsn", train=str(motion_data["train"]), out="", segments=4, input_size=16)
    ds = make_dataset(cfg, read_list(motion_data["train"]), True, label_map={0: 1, 1: 0})

    def batches(workers, rank=0, world=1, bs=4):
        loader = make_loader(ds, bs, True, workers, seed=3, rank=rank, world_size=world, drop_last=True)
        set_epoch(loader, 1)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 4
    for a, b in zip(serial, parallel, strict=True):
        assert a.indices == b.indices and torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels)
    halves = [batches(0, r, 2, 2) for r in (0, 1)]
    for g, full in enumerate(serial):
        joined = torch.cat([halves[0][g].clips, halves[1][g].clips])
        assert torch.equal(joined, full.clips)
    assert sorted(i for b in serial for i in b.indices) == list(range(16))


def test_cli_models_lists_cost():
    res = CliRunner().invoke(app, ["video", "models", "--segments", "2", "--input-size", "16", "--depth",
                                   "10", "--width", "4"])
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln.split() for ln in res.output.splitlines()[1:]}
    assert set(lines) == {"tsn", "tsm", "tea", "stm", "tdn", "tam", "c3d", "i3d", "r2plus1d", "i3d_full"}
    assert lines["tsn"][1:] == lines["tsm"][1:]  # the shift adds neither parameters nor FLOPs
    assert float(lines["i3d"][2]) > float(lines["tsn"][2])
    assert float(lines["i3d_full"][2]) > float(lines["i3d"][2])


def test_resume_refuses_another_batch_size_or_lr(motion_data, tiny_train_kwargs, tmp_path):
    # the scheduler resumes at a step count: with another batch size it would land elsewhere in the cosine
    cfg = TrainConfig(model="tsn", train=str(motion_data["train"]), out=str(tmp_path / "run"), epochs=1,
                      **tiny_train_kwargs)
    train(cfg)
    for change, flag in (({"batch_size": 2}, "--batch-size"), ({"lr": 1e-2}, "--lr")):
        other = TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2, "resume": True, **change})
        with pytest.raises(ValueError, match=flag):
            train(other)
    grown = TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2, "resume": True})  # more epochs: allowed
    assert [m["epoch"] for m in train(grown)] == [1, 2]


def test_a_crash_between_metrics_and_checkpoint_loses_no_epoch(motion_data, tiny_train_kwargs, tmp_path,
                                                               monkeypatch):
    cfg = TrainConfig(model="tsn", train=str(motion_data["train"]), val=str(motion_data["val"]),
                      out=str(tmp_path / "run"), epochs=3, **tiny_train_kwargs)
    real = training_mod.RunDir.log_epoch

    def crash_logging_epoch_2(self, entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt
        real(self, entry)

    monkeypatch.setattr(training_mod.RunDir, "log_epoch", crash_logging_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(training_mod.RunDir, "log_epoch", real)
    cfg.resume = True
    assert [m["epoch"] for m in train(cfg)] == [1, 2, 3]  # epoch 2 rerun from epoch 1's checkpoint
    assert [m["epoch"] for m in json.loads((tmp_path / "run" / "metrics.json").read_text())] == [1, 2, 3]


def _last_bn_gammas(model: torch.nn.Module) -> torch.Tensor:
    blocks = list(model.backbone.blocks())
    return torch.cat([b.conv2[1].weight.detach() for b in blocks])


def test_zero_init_residual_decides_whether_tsm_starts_order_blind():
    """gamma 0 at the end of every residual branch (the old init): a fresh TSM is TSN, blind to the order,
    and its branch convs get no gradient; gamma 1: the shifted features reach the logits from the start."""
    from deepnotes.video.models import build_model

    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 16, 16)
    opts = {"num_segments": 4, "depth": 10, "width": 8, "stem_stride": 1}
    zero = build_model("tsm", 8, zero_init_residual=True, **opts).eval()
    unit = build_model("tsm", 8, zero_init_residual=False, **opts).eval()
    assert (_last_bn_gammas(zero) == 0).all() and (_last_bn_gammas(unit) == 1).all()
    assert torch.allclose(zero(x), zero(x.flip(2)), atol=1e-6)
    assert not torch.allclose(unit(x), unit(x.flip(2)), atol=1e-3)
    zero.train()
    zero(x).sum().backward()
    assert all(b.conv1[1][0].weight.grad.abs().max() == 0 for b in zero.backbone.blocks())


def test_train_config_passes_zero_init_residual_to_the_model(tmp_path):
    cfg = TrainConfig(model="tdn", train="t.txt", out=str(tmp_path / "r"), zero_init_residual=False)
    assert training_mod.model_options(cfg)["zero_init_residual"] is False


def test_cli_synth_motion_hard_and_the_zero_init_flag(motion_data, tiny_train_kwargs, tmp_path):
    """`video synth motion_hard` writes the hard set; `--zero-init-residual` reaches the stored model
    config (default for every model: off, gamma 1)."""
    res = CliRunner().invoke(app, ["video", "synth", "motion_hard", str(tmp_path / "h"), "--n-per-class", "1",
                                   "--val-per-class", "1", "--frames", "4", "--size", "32"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "classes.txt").read_text().split()[4:6] == ["grow", "shrink"]
    for model in ("tsm", "tdn", "tsn"):
        assert TrainConfig(model=model, train="t", out="o").resolved_zero_init_residual() is False
    # a config.json stored while only TDN defaulted to gamma 1 holds null: read as gamma 1
    stored = TrainConfig(model="tsm", train="t", out="o", zero_init_residual=None)
    assert stored.resolved_zero_init_residual() is False
    args = ["video", "train", "--model", "tsm", "--train", str(motion_data["train"]), "--epochs", "1",
            "--segments", "4", "--input-size", "16", "--depth", "10", "--width", "4", "--stem-stride", "1",
            "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    for flag, expected in (("--zero-init-residual", True), (None, False)):
        out = tmp_path / f"run-{expected}"
        res = CliRunner().invoke(app, [*args, "--out", str(out), *([flag] if flag else [])])
        assert res.exit_code == 0, res.output
        _, meta = load_checkpoint(out / "checkpoint.safetensors")
        assert meta["model_config"]["zero_init_residual"] is expected


def test_cli_consensus_flag_reaches_the_tsn_model(motion_data, tmp_path):
    """`--consensus max` (a TrainConfig field, so a flag) is stored and rebuilds TSN with max consensus;
    an unknown mode is refused when the command line is parsed."""
    args = ["video", "train", "--model", "tsn", "--train", str(motion_data["train"]), "--epochs", "1",
            "--segments", "4", "--input-size", "16", "--depth", "10", "--width", "4", "--stem-stride", "1",
            "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--consensus", "max"])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["model_config"]["consensus"] == "max"
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "bad"), "--consensus", "median"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
