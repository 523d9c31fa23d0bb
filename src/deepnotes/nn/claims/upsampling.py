"""Claims of the upsampling topic: checkerboard artifacts at init, super-resolution on real photographs."""

from __future__ import annotations

import numpy as np
import torch

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test, ratios
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
                        device: torch.device) -> tuple[list[float], torch.Tensor]:
    """Stride-2 energy fraction of ``Upsample(kind)`` applied to a constant input, one per random init.

    ``uniform=True`` sets every weight to 1/fan_in and biases to 0 instead: it isolates the overlap pattern
    (how many kernel taps reach each output pixel) from the randomness of the weights.
    Returns (fraction per seed, one example output channel (2·size, 2·size)).
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
    return energies, example


UPSAMPLING_NOTE = "上采样概念:上采样指的是任何可以让图像变成更高分辨率的技术。"
UPSAMPLING_EN = "Upsampling: any technique that turns an image into one of higher resolution."


@claim(
    "upsampling.checkerboard", "upsampling",
    "A transposed convolution whose kernel size is not divisible by its stride (3 at stride 2) overlaps "
    "unevenly and produces a checkerboard at initialisation, one whose kernel is (4 at stride 2) does not; "
    "resize-convolution and ICNR-initialised PixelShuffle produce none.",
    tests=(
        Test("k3_uniform", "stride-frequency energy fraction of transposed k3 s2 on a constant input, "
             "uniform weights (the overlap pattern alone)", ">", 1e-3, method="exact"),
        Test("k4_uniform", "the same for transposed k4 s2 (even overlap)", "<", 1e-6, method="exact"),
        Test("resize_icnr", "max of the energy fractions of resize-conv (nearest) and ICNR PixelShuffle, "
             "per random init", "<", 1e-6),
        Test("k3_over_k4_random", "energy of k3 s2 / energy of k4 s2 with random weights, paired by init",
             ">", 1.0, scale="log", decides=False),
    ),
    origin="paper",
    source=Source("upsampling", UPSAMPLING_NOTE, UPSAMPLING_EN + " (The excerpt lists the PyTorch layers; "
                  "the checkerboard comes from the papers.)"),
    paper=Paper("Odena, Dumoulin & Olah, Deconvolution and Checkerboard Artifacts, Distill 2016; Aitken et "
                "al., Checkerboard artifact free sub-pixel convolution (ICNR), arXiv:1707.02937, 2017",
                "Odena et al.: a kernel size not divisible by the stride overlaps unevenly (their overlap "
                "figures); Aitken et al.: ICNR makes sub-pixel convolution artifact-free at init",
                "illustrations and generator outputs, no single number"),
)
def checkerboard(ctx: ClaimContext) -> Outcome:
    seeds = ctx.seeds(ctx.pick(8, 100))
    figures, rows, examples, energy = {}, [], [], {}
    for label, key, kind, k in CHECKER_VARIANTS:
        rand, example = checkerboard_energy(kind, k, seeds, 16, 32, False, ctx.device)
        uni, _ = checkerboard_energy(kind, k, seeds[:1], 16, 32, True, ctx.device)
        energy[key] = rand
        figures[f"energy_{key}"] = sum(rand) / len(rand)
        figures[f"energy_uniform_weights_{key}"] = uni[0]
        rows.append({"upsampler": label,
                     "stride-frequency energy (random init, mean)": f"{sum(rand) / len(rand):.2e}",
                     "with uniform weights": f"{uni[0]:.2e}"})
        examples.append((label, example))
    samples = {"k3_uniform": figures["energy_uniform_weights_transposed_k3_s2"],
               "k4_uniform": figures["energy_uniform_weights_transposed_k4_s2"],
               "resize_icnr": [max(a, b) for a, b in zip(energy["resize_conv_nearest"],
                                                          energy["pixelshuffle_icnr"], strict=True)],
               "k3_over_k4_random": ratios(energy["transposed_k3_s2"], energy["transposed_k4_s2"])}
    _checker_plot(ctx, examples)
    return Outcome(figures, samples, tables={"stride-frequency energy": rows},
                   notes=("With random weights even a kernel divisible by the stride (k4 s2) gives each of "
                          "the four output phases its own sum of taps, so it too shows a stride-frequency "
                          "pattern (reported, not decided); with uniform weights only the uneven overlap of "
                          "k3 s2 does. Resize-conv and ICNR have none."))


def _checker_plot(ctx: ClaimContext, examples: list[tuple[str, torch.Tensor]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 2.8))
    # deviations from each map's mean on one shared scale: a flat map shows as uniform mid-grey
    crops = [img[8:24, 8:24] - img[8:24, 8:24].mean() for _, img in examples]
    limit = max(float(c.abs().max()) for c in crops) or 1.0
    for ax, (label, _), crop in zip(axes, examples, crops, strict=False):
        ax.imshow(crop, cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    ctx.save_plot(fig, "outputs-for-constant-input")


# the upsamplers compared (max-unpooling needs pooling indices, which an SR input lacks)
SR_KINDS = ("nearest", "bilinear", "bicubic", "transposed", "pixelshuffle")


@claim(
    "upsampling.super_resolution", "upsampling",
    "On real photographs, a small learned super-resolution net beats bicubic interpolation at x2 and x4, "
    "whichever upsampler it uses.",
    tests=Test("worst_gain", "min over the five learned upsamplers and x2, x4 of (test PSNR of the net - "
               "bicubic's), dB, one value per training seed", ">", 0.0),
    origin="library",
    source=Source("upsampling", "最简单的方式是重采样和插值:将输入图片进行rescale到一个想要的尺寸,"
                  "而且计算每个点的像素点,使用如双线性插值等插值方法对其余点进行插值来完成上采样过程。",
                  "The simplest way is resampling and interpolation: rescale the input image to the wanted "
                  "size and compute each pixel, interpolating the other points with e.g. bilinear "
                  "interpolation to complete the upsampling."),
)
def super_resolution(ctx: ClaimContext) -> Outcome:
    # full: ~40 min per seed on 2 CPU cores (3000 steps on 96x96 crops would take ~3 h there)
    steps, crop, count, width = ctx.pick(200, 1500), ctx.pick(32, 64), ctx.pick(512, 8192), ctx.pick(16, 32)
    tests = _test_photos(ctx.pick(160, None), ctx.device)  # quick: centre crops of the test photos
    train = [load_gray(n) for n in TRAIN_IMAGES]
    per_seed, crop_rows, gains = [], [], []
    for i, seed in enumerate(ctx.seeds(ctx.pick(3, 5))):
        crops = random_crops(train, count, crop, seed)
        with ctx.one_thread(ctx.quick):  # quick: small nets on a shared laptop
            psnrs, outputs = _sr_seed(tests, crops, seed, steps, width, ctx.device)
        per_seed.append(psnrs)
        gains.append(min(psnrs[(s, f"net_{k}")] - psnrs[(s, "bicubic")] for s in (2, 4) for k in SR_KINDS))
        if i == 0:
            crop_rows = [_crop_row(TEST_IMAGES[0], s, tests, outputs[s], psnrs) for s in (2, 4)]
    figures, rows = {}, []
    for key in per_seed[0]:
        values = [p[key] for p in per_seed]
        figures[f"psnr_x{key[0]}_{key[1]}"] = sum(values) / len(values)
        rows.append({"scale": key[0], "method": key[1],
                     **{f"seed {j}": round(v, 3) for j, v in enumerate(values)},
                     "mean": round(sum(values) / len(values), 3)})
    ctx.save_plot(plot_crops(crop_rows), "crops")
    return Outcome(figures, gains,
                   tables={"mean test PSNR (dB) over the four photos, per training seed": rows},
                   notes=(f"{steps} AdamW steps (lr 2e-3) of 16 {crop}x{crop} crops per net, width {width}; "
                          "each net predicts a correction to bicubic; each seed draws its own training crops "
                          "and initialisation. Max-unpooling is not in this comparison: it needs pooling "
                          "indices, which a super-resolution input does not have."))


def _sr_seed(tests: dict, crops, seed: int, steps: int, width: int, device: torch.device
             ) -> tuple[dict[tuple[int, str], float], dict[int, dict]]:
    """One training seed: mean test PSNR per (scale, method) and each scale's outputs per method."""
    psnrs, outputs = {}, {}
    for scale in (2, 4):
        lrs = {n: downsample(hr, scale) for n, hr in tests.items()}
        outs = {"bicubic": {n: bicubic(lr, scale) for n, lr in lrs.items()}}
        for kind in SR_KINDS:
            net = train_sr(kind, scale, crops, steps, batch=16, seed=seed, device=device, lr=2e-3,
                           width=width)
            with torch.no_grad():  # "net_<kind>": the learned "bicubic" upsampler never shadows the baseline
                outs[f"net_{kind}"] = {n: net(lr) for n, lr in lrs.items()}
        for method, o in outs.items():
            values = [psnr(o[n], tests[n], shave=scale) for n in tests]
            psnrs[(scale, method)] = sum(values) / len(values)
        outputs[scale] = outs
    return psnrs, outputs


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


def _crop_row(name: str, scale: int, tests: dict, outputs: dict, psnrs: dict) -> tuple[str, list]:
    """The centre 64x64 of photo ``name``: the original, then each method's output titled with its PSNR."""
    hr = tests[name][0, 0].cpu().numpy()
    cy, cx = hr.shape[0] // 2 - 32, hr.shape[1] // 2 - 32
    panels = [("original", hr[cy : cy + 64, cx : cx + 64])]
    panels += [(f"{m} (mean {psnrs[(scale, m)]:.2f} dB)",
                o[name][0, 0].cpu().numpy()[cy : cy + 64, cx : cx + 64]) for m, o in outputs.items()]
    return f"{name} x{scale}", panels
