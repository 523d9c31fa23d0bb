"""Claims of the upsampling topic: checkerboard artifacts at init, super-resolution on real photographs."""

from __future__ import annotations

import numpy as np
import torch

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.nn.plots import plot_crops
from deepnotes.nn.super_resolution import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    bicubic,
    downsample,
    load_gray,
    psnr,
    random_crops,
    train_sr,
)
from deepnotes.nn.upsampling import Upsample, stride_frequency_energy

# (label, figure key, kind, kernel size): transposed 3/2 overlaps unevenly, 4/2 evenly
CHECKER_VARIANTS = (
    ("transposed k3 s2", "transposed_k3_s2", "transposed", 3),
    ("transposed k4 s2", "transposed_k4_s2", "transposed", 4),
    ("resize-conv (nearest)", "resize_conv_nearest", "nearest", 3),
    ("resize-conv (bilinear)", "resize_conv_bilinear", "bilinear", 3),
    ("pixelshuffle ICNR", "pixelshuffle_icnr", "pixelshuffle", 3),
)


def checkerboard_energy(kind: str, kernel: int, seeds: list[int], channels: int, size: int, uniform: bool,
                        device: torch.device) -> tuple[float, torch.Tensor]:
    """Mean stride-2 energy fraction of ``Upsample(kind)`` applied to a constant input, over random inits.

    ``uniform=True`` sets every weight to 1/fan_in and biases to 0 instead: it isolates the overlap pattern
    (how many kernel taps reach each output pixel) from the randomness of the weights.
    Returns (mean fraction, one example output channel (2·size, 2·size)).
    """
    energies, example = [], None
    x = torch.ones(1, channels, size, size, device=device)
    for s in seeds:
        torch.manual_seed(s)
        up = Upsample(kind, channels, channels, 2, kernel_size=kernel).to(device)
        if uniform:
            with torch.no_grad():
                up.conv.weight.fill_(1.0 / (channels * kernel * kernel))
                up.conv.bias.zero_()
        with torch.no_grad():
            y = up(x)[0]
        energies.append(stride_frequency_energy(y, 2, border=4).mean().item())
        example = y[0].cpu() if example is None else example
    return sum(energies) / len(energies), example


@claim(
    "upsampling.checkerboard",
    "upsampling",
    "A transposed convolution whose kernel size is not divisible by its stride produces checkerboard "
    "artifacts at initialisation; resize-convolution and ICNR-initialised PixelShuffle do not.",
    "constant input, x2, 16 channels, border cropped: mean fraction of output energy at the stride frequency "
    "over random inits > 1e-3 for transposed k3 s2, < 1e-6 for resize-conv (nearest) and ICNR PixelShuffle",
)
def checkerboard(ctx: ClaimContext) -> Outcome:
    import matplotlib.pyplot as plt

    seeds = [ctx.seed + i for i in range(ctx.pick(8, 100))]
    figures, rows, examples = {}, [], []
    for label, key, kind, k in CHECKER_VARIANTS:
        rand, example = checkerboard_energy(kind, k, seeds, 16, 32, False, ctx.device)
        uni, _ = checkerboard_energy(kind, k, seeds[:1], 16, 32, True, ctx.device)
        figures[f"energy_{key}"] = rand
        figures[f"energy_uniform_weights_{key}"] = uni
        rows.append({"upsampler": label, "stride-frequency energy (random init)": f"{rand:.2e}",
                     "with uniform weights": f"{uni:.2e}"})
        examples.append((label, example))
    held = (figures["energy_transposed_k3_s2"] > 1e-3 and figures["energy_resize_conv_nearest"] < 1e-6
            and figures["energy_pixelshuffle_icnr"] < 1e-6)
    fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 2.8))
    # deviations from each map's mean on one shared scale: a flat map shows as uniform mid-grey
    crops = [img[8:24, 8:24] - img[8:24, 8:24].mean() for _, img in examples]
    limit = max(float(c.abs().max()) for c in crops) or 1.0
    for ax, (label, _), crop in zip(axes, examples, crops, strict=False):
        ax.imshow(crop, cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    ctx.save_plot(fig, "outputs-for-constant-input")
    return Outcome(figures, held, tables={"stride-frequency energy": rows},
                   notes=("With random weights even a kernel divisible by the stride (k4 s2) gives each of "
                          "the four output phases its own sum of taps, so it too shows a stride-frequency "
                          "pattern; with uniform weights only the uneven overlap of k3 s2 does. Resize-conv "
                          "and ICNR have none."))


# the upsamplers compared (max-unpooling needs pooling indices, which an SR input lacks)
SR_KINDS = ("nearest", "bilinear", "bicubic", "transposed", "pixelshuffle")


@claim(
    "upsampling.super_resolution",
    "upsampling",
    "On real photographs, a small learned super-resolution net beats bicubic interpolation at x2 and x4, "
    "whichever upsampler it uses.",
    "scikit-image photographs, train on crops of camera/coins/moon/brick/grass/gravel/clock/page/"
    "immunohistochemistry, test on astronaut/coffee/cat/rocket (luminance): mean test PSNR of every learned "
    "upsampler > bicubic's, at x2 and at x4",
)
def super_resolution(ctx: ClaimContext) -> Outcome:
    # full: ~40 min on 2 CPU cores (3000 steps on 96x96 crops would take ~3 h there)
    steps, crop, count, width = ctx.pick(200, 1500), ctx.pick(32, 64), ctx.pick(512, 8192), ctx.pick(16, 32)
    crops = random_crops([load_gray(n) for n in TRAIN_IMAGES], count, crop, ctx.seed)
    tests = _test_photos(ctx.pick(160, None), ctx.device)  # quick: centre crops of the test photos
    figures, rows, crop_rows = {}, [], []
    for scale in (2, 4):
        lrs = {n: downsample(hr, scale) for n, hr in tests.items()}
        outputs = {"bicubic": {n: bicubic(lr, scale) for n, lr in lrs.items()}}
        for kind in SR_KINDS:
            net = train_sr(kind, scale, crops, steps, batch=16, seed=ctx.seed, device=ctx.device, lr=2e-3,
                           width=width)
            with torch.no_grad():  # "net_<kind>": the learned "bicubic" upsampler never shadows the baseline
                outputs[f"net_{kind}"] = {n: net(lr) for n, lr in lrs.items()}
        for method, outs in outputs.items():
            values = [psnr(outs[n], tests[n], shave=scale) for n in tests]
            figures[f"psnr_x{scale}_{method}"] = mean = sum(values) / len(values)
            rows.append({"scale": scale, "method": method,
                         **{n: round(v, 2) for n, v in zip(tests, values, strict=True)},
                         "mean": round(mean, 2)})
        crop_rows.append(_crop_row(TEST_IMAGES[0], scale, tests, outputs, figures))
    held = all(figures[f"psnr_x{s}_net_{k}"] > figures[f"psnr_x{s}_bicubic"]
               for s in (2, 4) for k in SR_KINDS)
    ctx.save_plot(plot_crops(crop_rows), "crops")
    return Outcome(figures, held, tables={"test PSNR (dB)": rows},
                   notes=(f"{steps} AdamW steps (lr 2e-3) of 16 {crop}x{crop} crops per net, width {width}; "
                          "each net predicts a correction to bicubic. Max-unpooling is not in this "
                          "comparison: it needs pooling indices, which a super-resolution input does not "
                          "have."))


def _test_photos(size: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """name -> (1, 1, H, W) luminance of each test photo: its centre ``size`` crop (whole when None),
    trimmed to a multiple of 4 so that x2 and x4 downsampling are exact."""
    tests = {}
    for name in TEST_IMAGES:
        img = load_gray(name)
        h, w = img.shape
        if size:
            y0, x0 = (h - size) // 2, (w - size) // 2
            img = img[y0 : y0 + size, x0 : x0 + size]
        img = img[: img.shape[0] // 4 * 4, : img.shape[1] // 4 * 4]
        tests[name] = torch.from_numpy(np.ascontiguousarray(img))[None, None].to(device)
    return tests


def _crop_row(name: str, scale: int, tests: dict, outputs: dict, figures: dict) -> tuple[str, list]:
    """The centre 64x64 of photo ``name``: the original, then each method's output titled with its PSNR."""
    hr = tests[name][0, 0].cpu().numpy()
    cy, cx = hr.shape[0] // 2 - 32, hr.shape[1] // 2 - 32
    panels = [("original", hr[cy : cy + 64, cx : cx + 64])]
    panels += [(f"{m} (mean {figures[f'psnr_x{scale}_{m}']:.2f} dB)",
                o[name][0, 0].cpu().numpy()[cy : cy + 64, cx : cx + 64]) for m, o in outputs.items()]
    return f"{name} x{scale}", panels
