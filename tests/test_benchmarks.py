"""Every benchmark script runs to the end at a tiny size and prints its comparison against the anchor.

Not a timing test (no figure is checked): the scripts are how the issues' speed goals are measured, and
each also asserts that what it times computes the same result as its anchor, so a script broken by a
library change must fail here rather than on the next accelerator session.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

RUNS = {
    "video_models.py": (["--depth", "10", "--width", "16", "--size", "32", "--frames", "4", "--batch", "1",
                         "--repeat", "1"], ["goal tdn:", "ratio naive/ours", "ratio conv/ours"]),
    "calib_pipeline.py": (["--frames", "6"], ["time ratio deepnotes/plain"]),
    "decode.py": (["--seconds", "4", "--size", "64,96", "--fps", "10", "--repeat", "1"],
                  ["ratio seek/decode-all"]),
    "flow.py": (["--videos", "1", "--frames", "4", "--size", "32", "--workers", "2"], ["per flow field"]),
    "optim_step.py": (["--params", "1e5", "--width", "64", "--repeat", "2"], ["goal ours-fused"]),
    "peft_step.py": (["--layers", "1", "--width", "64", "--vocab", "100", "--batch", "1", "--seq", "8",
                      "--repeat", "1", "--warmup", "1"], ["ours LoRA unmerged", "peft LoRA unmerged"]),
    "pretrained_init.py": (["--depth", "10", "--width", "8", "--frames", "4", "--size", "32", "--long", "8"],
                           ["relative gap to the 2D network"]),
    "pretrained_scene.py": (["--epochs", "1", "--pretrain-epochs", "1", "--n-per-class", "2", "--size", "16",
                             "--segments", "2"], ["epoch  scratch top1  pretrained top1"]),
    "pose_heads.py": (["--input-size", "128,96", "--heatmap-size", "32,24", "--batch-size", "1",
                       "--width", "8", "--deconv-channels", "16", "--repeat", "1"], ["rle"]),
}


def test_every_benchmark_script_is_covered():
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args, expected = RUNS[script]
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--device", "cpu", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for text in expected:
        assert text in done.stdout, f"{script} printed no {text!r}:\n{done.stdout[-2000:]}"


def test_benchmark_arguments_are_checked(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "peft_step.py"), "--width", "32"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "multiple of 64" in done.stderr
