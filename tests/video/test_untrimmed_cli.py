"""`deepnotes video synth untrimmed`, `flow` and `detect` from the command line, bad input included."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from deepnotes.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # rich wraps usage errors at the terminal width


def test_synth_untrimmed_train_and_detect(tmp_path):
    data = tmp_path / "data"
    r = runner.invoke(app, ["video", "synth", "untrimmed", str(data), "--n-per-class", "2",
                            "--val-per-class", "1", "--frames", "48", "--size", "32"])
    assert r.exit_code == 0, r.output
    gt = json.loads((data / "val_gt.json").read_text())
    assert gt["taxonomy"][0] == "background" and "val_0000" in gt["database"]
    assert (data / "train.txt").read_text().count("\n") > 5
    run = tmp_path / "run"
    r = runner.invoke(app, ["video", "train", "--model", "tsn", "--train", str(data / "train.txt"),
                            "--out", str(run), "--epochs", "1", "--segments", "2", "--input-size", "16",
                            "--depth", "10", "--width", "4", "--workers", "0", "--device", "cpu",
                            "--batch-size", "4"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "res.json"
    r = runner.invoke(app, ["video", "detect", str(run), str(data / "videos/val_0000.mp4"), "--out", str(out),
                            "--window", "16", "--stride", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert set(res) == {"version", "results", "external_data"} and "val_0000" in res["results"]
    for d in res["results"]["val_0000"]:
        assert d["label"] in gt["taxonomy"][1:] and 0 <= d["segment"][0] < d["segment"][1] <= 4.8
    frames_dir = tmp_path / "res_frames"
    assert (frames_dir / "frame_00001.png").is_file() and (frames_dir / "detections.mp4").is_file()

    # learned actor boxes: a clear error before training, then train-actors -> detect --boxes learned
    detect_learned = ["video", "detect", str(run), str(data / "videos/val_0000.mp4"), "--out", str(out),
                      "--window", "16", "--stride", "8", "--device", "cpu", "--no-render", "--boxes",
                      "learned"]
    r = runner.invoke(app, detect_learned)
    assert r.exit_code == 2 and "train-actors" in r.output
    r = runner.invoke(app, ["video", "train-actors", str(data), "--out", str(run / "actor_net.safetensors"),
                            "--steps", "5", "--device", "cpu"])
    assert r.exit_code == 0 and "annotated frames" in r.output, r.output
    r = runner.invoke(app, detect_learned)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert "learned boxes" in res["external_data"]["details"]
    for d in res["results"]["val_0000"]:
        for _, x1, y1, x2, y2 in d.get("boxes", []):
            assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32
    r = runner.invoke(app, [*detect_learned, "--actor-model", str(run / "checkpoint.safetensors")])
    assert r.exit_code == 2 and "not an actor net" in r.output

    # bad input: a video shorter than one window, a missing video, a run without a background class
    r = runner.invoke(app, ["video", "detect", str(run), str(data / "videos/val_0000.mp4"), "--out", str(out),
                            "--window", "64", "--device", "cpu", "--no-render"])
    assert r.exit_code == 2 and "shorter than one window" in r.output
    r = runner.invoke(app, ["video", "detect", str(run), str(tmp_path / "nope.mp4"), "--out", str(out)])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_flow_cli_reports_bad_videos_and_unavailable_methods(tmp_path):
    import numpy as np

    from deepnotes.video.data.synth import write_mp4

    write_mp4(tmp_path / "a.mp4", np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_text("a.mp4 0\nempty.mp4 1\n")
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "flow"),
                            "--method", "farneback"])
    assert r.exit_code == 0, r.output
    assert "1 written" in r.output and "1 failed" in r.output and "empty.mp4" in r.output
    assert (tmp_path / "flow/flow_list.txt").read_text() == "a 3 0\n"
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "flow"),
                            "--method", "farneback"])
    assert "1 already done" in r.output
    # another method is not "done": the folder is recomputed
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "flow")])
    assert "1 written" in r.output
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "f2"),
                            "--method", "horn"], env=WIDE)  # refused at parse time, the methods listed
    assert r.exit_code == 2 and "'horn' is not one of 'farneback', 'dis', 'tvl1'" in r.output
    (tmp_path / "bad.txt").write_text("a.mp4 zero\n")
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "f3")])
    assert r.exit_code == 2 and "bad.txt:1" in r.output


def test_flow_refuses_unknown_formats_and_fails_when_every_video_failed(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_text("empty.mp4 1\n")
    for formats, bad in (("gif", "'gif'"), ("jpg,gif", "'gif'"), (",", "no format given")):
        r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "f"),
                                "--formats", formats], env=WIDE)
        assert r.exit_code == 2 and "'--formats'" in r.output and bad in r.output, r.output
        assert "jpg, png, npz" in r.output and not (tmp_path / "f").exists()  # nothing ran
    r = runner.invoke(app, ["video", "flow", str(tmp_path / "list.txt"), "--out", str(tmp_path / "f"),
                            "--method", "farneback", "--formats", "png"])
    assert r.exit_code == 2 and "1 failed" in r.output and "every video failed" in r.output
    assert (tmp_path / "f" / "flow_list.txt").read_text() == ""
