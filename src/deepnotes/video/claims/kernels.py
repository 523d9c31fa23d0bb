"""Claim 3 of the video topic: 3D convolutions learn near-uniform temporal kernels, TAM's adaptive kernels
vary over time and from clip to clip (read from the runs trained once per report, see :mod:`.common`)."""

from __future__ import annotations

import torch

from deepnotes.core import Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test
from deepnotes.video.claims.common import setup_of, work_dir
from deepnotes.video.config import TrainConfig
from deepnotes.video.data import make_loader, read_list
from deepnotes.video.experiments import Setup, dataset, load_trained, model_for, trained
from deepnotes.video.models import MODELS
from deepnotes.video.models.tam import TAM
from deepnotes.video.training import make_dataset

# the 3D models the claims train (variants are only costed)
MODELS_3D = tuple(MODELS.names(family="3d", variant=False))


def _temporal_stats(w: torch.Tensor) -> tuple[float, float]:
    """(spread, DC share) of weights (..., K) along the last axis.

    spread = mean |w_t - mean_t w| / mean |w| (0 = identical weight for every time step: pure smoothing);
    DC share = K * ||mean_t w||^2 / ||w||^2 (1 = pure averaging; 1/K expected for independent random weights).
    """
    w = w.double()
    mean = w.mean(-1, keepdim=True)
    spread = ((w - mean).abs().mean() / w.abs().mean()).item()
    dc = (w.shape[-1] * mean.pow(2).sum() / w.pow(2).sum()).item()
    return spread, dc


def _conv3d_kernels(model: torch.nn.Module) -> torch.Tensor:
    """All temporal kernels (kt > 1) of a 3D network as rows (n, kt)."""
    rows = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] > 1:
            rows.append(m.weight.detach().permute(0, 1, 3, 4, 2).reshape(-1, m.kernel_size[0]))
    return torch.cat(rows)


@claim("video.3d_kernels_smooth", "video",
       "3D convolutions learn temporal kernels that are close to uniform over time (smooth aggregation): "
       "training moves I3D's temporal kernels towards their time average.",
       tests=(
           Test("dc_gain", "I3D's DC share of its temporal kernels (1 = pure averaging) after training minus "
                "at initialisation (one training)", ">", 0.0),
           Test("i3d_vs_r2plus1d", "I3D's DC share minus that of R(2+1)D's learned 1D temporal convs (a "
                "like-for-like arm: plain conv weights both, one training each)", ">", 0.0, decides=False),
           Test("spread_vs_tam", "TAM's temporal spread minus I3D's (TAM's kernels are softmax weights, "
                "flat by construction: not a like-for-like contrast)", ">", 0.0, decides=False),
       ),
       origin="note",
       source=Source("3d", "而且3D卷积学出来的时序Kernel的weight的分布基本一致,"
                     "更多的还是对时序上的信息做一种 smooth aggregation。",
                     "and the temporal kernels 3D convolutions learn have nearly identical weight "
                     "distributions: they mostly perform a smooth aggregation of the temporal information."),
       paper=Paper("Liu, Wang, Wu & Lu, TAM: Temporal Adaptive Module for Video Recognition (TANet), "
                   "ICCV 2021",
                   "the note cites TANet's discussion of 3D kernels (no number quoted by the note)",
                   "Kinetics-400 and Something-Something, ResNet-50"))
def kernels_smooth(ctx) -> Outcome:
    setup, work, device = setup_of(ctx), work_dir(ctx), str(ctx.device)
    rows, figures = [], {}
    for m in MODELS_3D:
        _, run = trained(work, "motion", m, setup, ctx.seed, device)
        torch.manual_seed(ctx.seed)
        init = model_for(m, setup)
        s0, d0 = _temporal_stats(_conv3d_kernels(init))
        s1, d1 = _temporal_stats(_conv3d_kernels(load_trained(run)))
        rows.append({"model": m, "spread_init": s0, "spread_trained": s1, "dc_share_init": d0,
                     "dc_share_trained": d1})
        figures.update({f"{m}_spread": s1, f"{m}_dc_share": d1, f"{m}_dc_share_init": d0})
    _, run = trained(work, "motion", "tam", setup, ctx.seed, device)
    per_layer = _tam_kernels(load_trained(run), dataset(work, "motion", setup, ctx.seed), setup)
    kernels = torch.cat([k.reshape(-1, k.shape[-1]) for k in per_layer])
    ts, td = _temporal_stats(kernels)
    across = _across_clip_variation(per_layer)
    rows.append({"model": "tam (adaptive)", "spread_init": None, "spread_trained": ts, "dc_share_init": None,
                 "dc_share_trained": td})
    figures.update({"tam_spread": ts, "tam_dc_share": td, "tam_across_clip_variation": across})
    i3d = rows[[r["model"] for r in rows].index("i3d")]
    r21d = rows[[r["model"] for r in rows].index("r2plus1d")]
    samples = {"dc_gain": [i3d["dc_share_trained"] - i3d["dc_share_init"]],
               "i3d_vs_r2plus1d": [i3d["dc_share_trained"] - r21d["dc_share_trained"]],
               "spread_vs_tam": [ts - i3d["spread_trained"]]}
    _kernel_plot(ctx, load_trained(trained(work, "motion", "i3d", setup, ctx.seed, device)[1]), kernels)
    notes = ("3D kernels are all conv weights with a temporal extent > 1, before and after training (one "
             "training: n = 1). TAM kernels are softmax weights per clip and channel, measured on the "
             f"validation clips (reported, not decided). TAM across-clip variation (std over clips of each "
             f"layer's and channel's kernel / mean |kernel|): {across:.3f}.")
    return Outcome(figures, samples, tables={"temporal kernel statistics": rows}, notes=notes)


def _across_clip_variation(per_layer: list[torch.Tensor]) -> float:
    """How much a (layer, channel)'s kernel changes from clip to clip, relative to its size: the mean over
    layers, channels and taps of the std over clips, over the mean |kernel| (layers of any width)."""
    spread = torch.cat([k.std(0).flatten() for k in per_layer]).mean()
    size = torch.cat([k.mean(0).abs().flatten() for k in per_layer]).mean()
    return (spread / size).item()


@torch.no_grad()
def _tam_kernels(model: torch.nn.Module, data: dict, setup: Setup) -> list[torch.Tensor]:
    """The kernels each TAM layer produced on the validation clips: one (clips, channels, K) per layer."""
    cfg = TrainConfig(model="tam", train=str(data["train"]), out="", segments=setup.segments,
                      input_size=setup.size, cache=True, workers=0)
    loader = make_loader(make_dataset(cfg, read_list(data["val"]), False), 16, False)
    layers = [m for m in model.modules() if isinstance(m, TAM)]
    out: list[list[torch.Tensor]] = [[] for _ in layers]
    for batch in loader:
        model(batch.clips.flatten(0, 1))
        for kept, m in zip(out, layers, strict=True):
            kept.append(m.last_kernel)
    return [torch.cat(k) for k in out]


def _kernel_plot(ctx, i3d: torch.nn.Module, tam_kernels: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k3 = _conv3d_kernels(i3d)
    k3 = k3 / k3.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    panels = ((axes[0], k3, "I3D temporal weights (L1-normalised)"), (axes[1], tam_kernels, "TAM kernels"))
    for ax, k, title in panels:
        pick = k[torch.randperm(len(k), generator=torch.Generator().manual_seed(0))[:200]]
        ax.plot(range(k.shape[1]), pick.T.numpy(), c="C0", alpha=0.08)
        ax.plot(range(k.shape[1]), k.mean(0).numpy(), c="C3", lw=2)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(k.shape[1]), [str(j - k.shape[1] // 2) for j in range(k.shape[1])])
        ax.set_xlabel("time offset (frames)")
    ctx.save_plot(fig, "kernels")
