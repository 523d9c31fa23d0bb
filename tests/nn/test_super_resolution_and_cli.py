import math

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.nn.super_resolution import SRNet, bicubic, downsample, load_gray, psnr, random_crops, train_sr


def test_psnr_of_known_error():
    target = torch.full((1, 1, 20, 20), 0.5)
    pred = target + 0.1
    assert psnr(pred, target, shave=2) == pytest.approx(10 * math.log10(1 / 0.01), rel=1e-5)
    assert psnr(pred, target, shave=0) == pytest.approx(10 * math.log10(1 / 0.01), rel=1e-5)  # whole image


def test_sr_net_shapes_and_bicubic_skip():
    lr = torch.rand(2, 1, 12, 12)
    for scale in (2, 4):
        net = SRNet("pixelshuffle", scale, width=8)
        torch.testing.assert_close(net(lr), bicubic(lr, scale))  # zero-initialised head: exactly the baseline


def test_sr_training_on_a_photo_beats_bicubic():
    img = load_gray("camera")
    assert img.shape == (512, 512) and 0 <= img.min() and img.max() <= 1
    crops = random_crops([img[:256]], 128, 32, seed=0)
    net = train_sr("pixelshuffle", 2, crops, steps=60, batch=16, seed=0, device=torch.device("cpu"), lr=2e-3,
                   width=16)
    hr = torch.from_numpy(img[256:384, 256:384].copy())[None, None]  # a region not trained on
    lr = downsample(hr, 2)
    with torch.no_grad():
        assert psnr(net(lr), hr, 2) > psnr(bicubic(lr, 2), hr, 2)
    with pytest.raises(ValueError, match="no image"):
        load_gray("lena")


def test_cli_list_and_plot(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["nn", "list"])
    assert res.exit_code == 0
    assert "swiglu" in res.output and "pixelshuffle" in res.output and "mish" in res.output
    res = runner.invoke(app, ["nn", "plot", "--out", str(tmp_path), "--names", "relu,gelu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "activations.png").stat().st_size > 1000
    lines = (tmp_path / "activations.csv").read_text().splitlines()
    assert lines[0] == "x,relu,d_relu,gelu,d_gelu" and len(lines) == 202
    x, relu, d_relu = (float(v) for v in lines[-1].split(",")[:3])
    assert x == 5 and relu == 5 and d_relu == 1
    res = runner.invoke(app, ["nn", "plot", "--out", str(tmp_path), "--names", "relu"])
    assert res.exit_code == 2 and "--force" in res.output
    res = runner.invoke(app, ["nn", "plot", "--out", str(tmp_path), "--names", "relu,swishy", "--force"])
    assert res.exit_code == 2 and "swishy" in res.output and "valid: step" in res.output


def test_cli_plot_refuses_an_unknown_activation_at_parse_time(tmp_path):
    from deepnotes.nn.activations import ACTIVATIONS

    runner = CliRunner()
    res = runner.invoke(app, ["nn", "plot", "--out", str(tmp_path / "fresh"), "--names", "gelu,swishy"])
    message = " ".join(res.output.replace("│", " ").split())  # typer draws usage errors in a wrapped box
    assert res.exit_code == 2 and "--names" in message and "swishy" in message
    assert "valid: " + ", ".join(ACTIVATIONS) in message
    assert not (tmp_path / "fresh").exists()  # refused before anything was made
    res = runner.invoke(app, ["nn", "plot", "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and ", ".join(ACTIVATIONS) in " ".join(res.output.replace("│", " ").split())
