"""Video models behind one name lookup: ``build_model(name, num_classes, ...)``.

``MODELS`` maps a name to a builder ``fn(ModelConfig) -> nn.Module`` taking (N, C, T, H, W) clips and
returning (N, num_classes) logits; other modules register more models by adding to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn

from deepnotes.core.timing import count_flops, count_parameters
from deepnotes.video.models import c3d, i3d, r2plus1d, stm, tam, tdn, tea, tsm, tsn
from deepnotes.video.models.base import ModelConfig, Recognizer2D, Recognizer3D

MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "tsn": tsn.build,
    "tsm": tsm.build,
    "tea": tea.build,
    "stm": stm.build,
    "tdn": tdn.build,
    "tam": tam.build,
    "c3d": c3d.build,
    "i3d": i3d.build,
    "i3d_full": i3d.build_full,
    "r2plus1d": r2plus1d.build,
}
TEMPORAL_2D = ("tsm", "tea", "stm", "tdn", "tam")
MODELS_3D = ("c3d", "i3d", "r2plus1d")
# further variants, built and benchmarked but not trained by the claims (to keep `--quick` short)
VARIANTS_3D = ("i3d_full",)


# models with options beyond ModelConfig's name a ModelConfig subclass here (e.g. two_stream)
CONFIGS: dict[str, type[ModelConfig]] = {}


def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` (see ``MODELS``); ``options`` are :class:`ModelConfig` fields (num_segments,
    depth, width, stem_stride, dropout, in_channels, input_size). The model keeps its config in ``.cfg``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    config_cls = CONFIGS.get(name, ModelConfig)
    fields = set(config_cls.__dataclass_fields__) - {"name", "num_classes"}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(f"unknown model option(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}")
    cfg = config_cls(name=name, num_classes=num_classes, **options)
    model = MODELS[name](cfg)
    model.cfg = cfg
    return model


def build_from_config(cfg: dict) -> nn.Module:
    """Rebuild a model from ``asdict(ModelConfig)`` (as stored in checkpoint meta)."""
    cfg = dict(cfg)
    return build_model(cfg.pop("name"), cfg.pop("num_classes"), **cfg)


def model_cost(model: nn.Module, frames: int | None = None, size: int | None = None) -> dict[str, int]:
    """Parameters and forward FLOPs (torch.utils.flop_counter) for one clip (1, C, T, S, S)."""
    cfg = model.cfg
    x = torch.zeros(1, cfg.in_channels, frames or cfg.num_segments, size or cfg.input_size, size or cfg.input_size,
                    device=next(model.parameters()).device)
    return {"params": count_parameters(model), "flops": count_flops(model, x)}


# the two-stream network (deepnotes.video.two_stream) registers itself: MODELS / CONFIGS["two_stream"]
from deepnotes.video import two_stream as _two_stream  # noqa: E402

MODELS["two_stream"], CONFIGS["two_stream"] = _two_stream.build, _two_stream.TwoStreamConfig

__all__ = ["MODELS", "MODELS_3D", "TEMPORAL_2D", "VARIANTS_3D", "ModelConfig", "Recognizer2D", "Recognizer3D", "asdict",
           "build_from_config", "build_model", "model_cost"]
