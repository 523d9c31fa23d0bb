"""Two-stream network (Simonyan & Zisserman, 2014) with late fusion built into the model.

* spatial stream: any recogniser of ``deepnotes.video.models`` on RGB frames (appearance);
* temporal stream: the same recogniser on stacks of L optical-flow fields (2L input channels, motion); its
  first conv is initialised "cross-modality" (Wang et al., TSN 2016): the RGB first-conv weights averaged
  over the 3 colour channels and repeated 2L times, so an RGB-trained network becomes a flow network;
* late fusion of the two softmax scores: a weighted average with fixed weights (default spatial 1 :
  temporal 1.5, the TSN setting) or learned weights (softmax over per-stream logits, fit on the fused loss
  with the streams' scores detached, so fusion never changes what each stream learns).

Input: one tensor (N, 3 + 2L, S, H, W), the RGB frame of each of S segments followed by the 2L flow
channels centred on it (as :class:`~deepnotes.video.two_stream.dataset.TwoStreamLoader` builds it). Output:
log of the fused class probabilities (N, K), so ``softmax(output)`` is the fused score and cross-entropy
on it is the fused negative log-likelihood; the training loss is :meth:`TwoStream.loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer
from deepnotes.video.models.registry import MODELS, build_model

FUSIONS = ("weighted", "learned")
DEFAULT_WEIGHTS = (1.0, 1.5)


def parse_fusion(spec: str) -> tuple[str, tuple[float, float]]:
    """``"weighted"``, ``"weighted:1,1.5"`` or ``"learned"`` (initial weights after a colon) -> (mode,
    weights)."""
    mode, _, rest = spec.partition(":")
    if mode not in FUSIONS:
        raise ValueError(f"unknown fusion {spec!r}; valid: weighted[:w_rgb,w_flow], learned[:w_rgb,w_flow]")
    if not rest:
        return mode, DEFAULT_WEIGHTS
    try:
        w = tuple(float(v) for v in rest.split(","))
    except ValueError:
        raise ValueError(f"fusion weights in {spec!r} must be numbers, e.g. weighted:1,1.5") from None
    if len(w) != 2 or min(w) < 0 or sum(w) <= 0:
        raise ValueError(f"fusion {spec!r}: give two non-negative weights (RGB, flow) with a positive sum")
    return mode, w


class LateFusion(nn.Module):
    """Weighted average of per-stream softmax scores: p = sum_i w_i softmax(z_i) / sum_i w_i.

    ``learned=False``: w fixed (a buffer). ``learned=True``: w = softmax(a) with a learnable ``a``
    initialised to the log of the normalised given weights (so training starts from them; w sums to 1).
    Input: list of (N, K) logits; output (N, K) probabilities.
    """

    def __init__(self, weights: Sequence[float] = DEFAULT_WEIGHTS, learned: bool = False) -> None:
        super().__init__()
        w = torch.tensor([float(x) for x in weights])
        w = w / w.sum()
        self.learned = learned
        if learned:
            self.logit = nn.Parameter(w.clamp_min(1e-6).log())
        else:
            self.register_buffer("fixed", w)

    def weights(self) -> torch.Tensor:
        """Normalised stream weights (num_streams,)."""
        return F.softmax(self.logit, 0) if self.learned else self.fixed

    def forward(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        probs = torch.stack([F.softmax(z, -1) for z in logits])  # (streams, N, K)
        w = self.weights().to(probs.dtype)
        return torch.einsum("s,snk->nk", w, probs)


def cross_modality_init(flow_net: nn.Module, rgb_net: nn.Module) -> None:
    """Initialise ``flow_net`` (first conv with 2L input channels) from ``rgb_net`` (3 input channels).

    Every parameter and buffer of the same name and shape is copied; the first conv's RGB kernel
    (out, 3, k, k) is averaged over its input channels and repeated to (out, 2L, k, k).
    """
    rgb_state = rgb_net.state_dict()
    own = flow_net.state_dict()
    first = _first_conv_name(flow_net)
    new = {}
    for name, value in own.items():
        src = rgb_state.get(name)
        if name == first and src is not None:
            new[name] = src.mean(1, keepdim=True).expand_as(value).clone()
        elif src is not None and src.shape == value.shape:
            new[name] = src.clone()
        else:
            new[name] = value
    flow_net.load_state_dict(new)


def _first_conv_name(net: nn.Module) -> str:
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            return f"{name}.weight"
    raise ValueError(f"{type(net).__name__} has no convolution to initialise")


class TwoStream(Recognizer):
    """Spatial + temporal recogniser with late fusion. (N, 3 + 2L, S, H, W) -> (N, K) log fused probabilities.

    Args:
        spatial: recogniser for (N, 3, S, H, W) RGB clips; temporal: for (N, 2L, S, H, W) flow stacks.
        new_length: L; fusion: ``"weighted"`` or ``"learned"``; weights: (RGB, flow) initial weights.
        cross_modality: initialise the temporal stream from the spatial one (useful when the spatial
            stream is pretrained; see :func:`cross_modality_init`).

    Validation reports each stream alone next to the fusion: ``view_model("rgb")`` / ``view_model("flow")``.
    """

    VIEWS = ("rgb", "flow")

    def __init__(self, spatial: nn.Module, temporal: nn.Module, new_length: int, fusion: str = "weighted",
                 weights: Sequence[float] = DEFAULT_WEIGHTS, cross_modality: bool = True) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}")
        self.spatial, self.temporal, self.new_length = spatial, temporal, new_length
        self.fusion = LateFusion(weights, learned=fusion == "learned")
        if cross_modality:
            cross_modality_init(self.temporal, self.spatial)
        self.last_streams: tuple[torch.Tensor, torch.Tensor] | None = None

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3 + 2L, S, H, W) -> RGB (N, 3, S, H, W), flow (N, 2L, S, H, W)."""
        if x.shape[1] != 3 + 2 * self.new_length:
            raise ValueError(f"two-stream input needs 3 + 2*{self.new_length} channels, got {x.shape[1]}")
        return x[:, :3], x[:, 3:]

    def streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-stream logits ((N, K), (N, K))."""
        rgb, flow = self.split(x)
        return self.spatial(rgb), self.temporal(flow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z_rgb, z_flow = self.streams(x)
        self.last_streams = (z_rgb, z_flow)
        # learned fusion is fit on detached scores: it learns how to combine, the streams learn separately
        detach = self.fusion.learned and self.training
        fused = self.fusion([z_rgb.detach(), z_flow.detach()] if detach else [z_rgb, z_flow])
        return fused.clamp_min(1e-12).log()

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training loss after a forward: each stream's cross-entropy (the streams train as if alone), plus
        the fused NLL when fusion is learned (only the fusion weights get its gradient)."""
        if self.last_streams is None:
            raise RuntimeError("call the model on a batch before loss()")
        z_rgb, z_flow = self.last_streams
        loss = F.cross_entropy(z_rgb, labels) + F.cross_entropy(z_flow, labels)
        if self.fusion.learned:
            loss = loss + F.nll_loss(output, labels)
        return loss

    def view_model(self, view: str) -> StreamView:
        """One stream alone, as a model of the same (N, 3 + 2L, S, H, W) input: ``view`` "rgb" or "flow"."""
        return StreamView(self, view)


class StreamView(nn.Module):
    """One stream of a :class:`TwoStream` as a model of its own (same input), to evaluate it alone:
    ``which`` is ``"rgb"`` or ``"flow"``; output that stream's logits (N, K)."""

    def __init__(self, model: TwoStream, which: str) -> None:
        super().__init__()
        if which not in ("rgb", "flow"):
            raise ValueError(f"stream must be rgb or flow, got {which!r}")
        self.model, self.which = model, which

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb, flow = self.model.split(x)
        return self.model.spatial(rgb) if self.which == "rgb" else self.model.temporal(flow)


def build_two_stream(num_classes: int, stream: str = "tsn", new_length: int = 5, fusion: str = "weighted",
                     cross_modality: bool = True, **options) -> TwoStream:
    """Two streams of recogniser ``stream`` (any name of ``deepnotes.video.models.MODELS``) with late fusion.

    ``fusion``: ``"weighted"``, ``"weighted:1,1.5"``, ``"learned"`` (see :func:`parse_fusion`);
    ``options``: ModelConfig fields shared by both streams (num_segments, depth, width, ...).
    """
    if stream in MODELS and MODELS.info(stream)["modality"] != "rgb":  # (unknown: build_model says so)
        raise ValueError("the streams of a two-stream model must be single-stream recognisers")
    mode, weights = parse_fusion(fusion)
    options = {k: v for k, v in options.items() if k != "in_channels"}
    spatial = build_model(stream, num_classes, in_channels=3, **options)
    temporal = build_model(stream, num_classes, in_channels=2 * new_length, **options)
    return TwoStream(spatial, temporal, new_length, mode, weights, cross_modality)


@dataclass
class TwoStreamConfig(ModelConfig):
    """ModelConfig plus the two-stream options; ``in_channels`` is the fused input's 3 + 2L."""

    stream: str = "tsn"
    new_length: int = 5
    fusion: str = "weighted:1,1.5"

    def __post_init__(self) -> None:
        self.in_channels = 3 + 2 * self.new_length


# clips carry RGB and flow; the train config's stream/new_length/fusion reach TwoStreamConfig; validation
# reports each stream alone
@MODELS.register("two_stream", family="two_stream", config=TwoStreamConfig, modality="two_stream",
                 options=("stream", "new_length", "fusion"), views=TwoStream.VIEWS)
def build(cfg: TwoStreamConfig) -> TwoStream:
    """``MODELS["two_stream"]``: both streams share every ModelConfig option of ``cfg``."""
    own = ("name", "num_classes", "in_channels")
    shared = {f.name: getattr(cfg, f.name) for f in fields(ModelConfig) if f.name not in own}
    return build_two_stream(cfg.num_classes, cfg.stream, cfg.new_length, cfg.fusion, **shared)
