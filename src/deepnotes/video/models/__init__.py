"""Video models behind one name lookup: ``build_model(name, num_classes, ...)``.

``MODELS`` (a :class:`~deepnotes.core.registry.Registry`, see :mod:`.registry`) maps a name to a builder
``fn(ModelConfig) -> nn.Module`` taking (N, C, T, H, W) clips and returning (N, num_classes) logits. Each
model file registers itself (``@MODELS.register("tam", family="2d")`` above its ``build``) and is imported
below, one line per model: adding a model is its file plus that line. The CLI choices, the claims' model
lists and the tests' parametrisation read the registry.

Families (``MODELS.names(family=...)``): ``"2d"`` (TSN, ``temporal=False``, and the temporal modules),
``"3d"`` (``variant=True``: built and costed, not trained by the claims) and ``"two_stream"``.

Hooks training uses instead of checking model names:

* ``MODELS.info(name)["modality"]``: what the clips carry (``"rgb"``, or ``"two_stream"``: RGB + flow);
* ``MODELS.info(name)["options"]``: train-config fields passed on to :func:`build_model` as options
  (``two_stream``: ``("stream", "new_length", "fusion")``);
* ``model.loss(output, labels)``: every model's training loss (cross-entropy, or the two-stream's own);
* ``MODELS.info(name)["views"]`` and ``model.view_model(view)``: extra views validated next to the model
  (``two_stream``: ``"rgb"`` and ``"flow"``, each stream alone, as a module of the same input).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from deepnotes.core.timing import count_flops, count_parameters
from deepnotes.video.models.base import ModelConfig, Recognizer, Recognizer2D, Recognizer3D
from deepnotes.video.models.registry import FAMILIES, MODELS, build_from_config, build_model

# one line per model: importing its file registers it, in this order (the order of the CLI's list and
# of the claims' tables)
# isort: off
from deepnotes.video.models import tsn  # noqa: F401
from deepnotes.video.models import tsm  # noqa: F401
from deepnotes.video.models import tea  # noqa: F401
from deepnotes.video.models import stm  # noqa: F401
from deepnotes.video.models import tdn  # noqa: F401
from deepnotes.video.models import tam  # noqa: F401
from deepnotes.video.models import c3d  # noqa: F401
from deepnotes.video.models import i3d  # noqa: F401  (i3d and i3d_full)
from deepnotes.video.models import r2plus1d  # noqa: F401
from deepnotes.video.models import two_stream  # noqa: F401
# isort: on
# after the model files: it imports two_stream, which must register after the single-stream models
from deepnotes.video.models.pretrained import init_from_2d

# the lists of the families, read from the registry once every model above is in it
TEMPORAL_2D = tuple(MODELS.names(family="2d", temporal=True))
MODELS_3D = tuple(MODELS.names(family="3d", variant=False))
# further variants, built and benchmarked but not trained by the claims (to keep `--quick` short)
VARIANTS_3D = tuple(MODELS.names(family="3d", variant=True))
# models with options beyond ModelConfig's, and the config class that holds them (e.g. two_stream)
CONFIGS: dict[str, type[ModelConfig]] = {n: MODELS.info(n)["config"] for n in MODELS
                                         if MODELS.info(n)["config"] is not ModelConfig}


def model_cost(model: torch.nn.Module, frames: int | None = None, size: int | None = None) -> dict[str, int]:
    """Parameters and forward FLOPs (torch.utils.flop_counter) for one clip (1, C, T, S, S)."""
    cfg = model.cfg
    s = size or cfg.input_size
    device = next(model.parameters()).device
    x = torch.zeros(1, cfg.in_channels, frames or cfg.num_segments, s, s, device=device)
    return {"params": count_parameters(model), "flops": count_flops(model, x)}


__all__ = ["CONFIGS", "FAMILIES", "MODELS", "MODELS_3D", "TEMPORAL_2D", "VARIANTS_3D", "ModelConfig",
           "Recognizer", "Recognizer2D", "Recognizer3D", "asdict", "build_from_config", "build_model",
           "init_from_2d", "model_cost"]
