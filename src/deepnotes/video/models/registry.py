"""The video model registry, apart from the model files so that each can register itself without a cycle.

A model file registers its builder ``fn(ModelConfig) -> nn.Module`` with a decorator, and
``deepnotes.video.models`` imports the file (one line per model)::

    @MODELS.register("tam", family="2d")
    def build(cfg: ModelConfig) -> Recognizer2D: ...

Every entry carries these attributes (``MODELS.info(name)``; the ones left out take the defaults below):

* ``family``: ``"2d"`` (a per-frame 2D network, time folded into the batch), ``"3d"`` or ``"two_stream"``;
* ``temporal``: ``False`` only for a model blind to frame order (TSN, the 2D baseline every temporal
  module is measured against);
* ``variant``: ``True`` for a variant that is built and costed but not trained by the claims (``i3d_full``);
* ``config``: the :class:`ModelConfig` subclass of a model with options of its own;
* ``modality``: what its clips carry, a key of the training's frame loaders (``"rgb"``; ``"two_stream"``:
  RGB and stacked flow in one tensor);
* ``options``: names of the training config's fields that :func:`build_model` passes on to this model
  (``two_stream``: ``stream``, ``new_length``, ``fusion``);
* ``views``: the extra views validation reports next to the model (``two_stream``: ``"rgb"`` and
  ``"flow"``, each stream alone); ``model.view_model(view)`` is that view as a module of the same input.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deepnotes.core.registry import Registry
from deepnotes.video.models.base import ModelConfig

FAMILIES = ("2d", "3d", "two_stream")
DEFAULTS: dict[str, Any] = {"temporal": True, "variant": False, "config": ModelConfig, "modality": "rgb",
                            "options": (), "views": ()}


class ModelRegistry(Registry):
    """A :class:`Registry` whose entries name their family and always carry every attribute of ``DEFAULTS``,
    so ``MODELS.names(variant=False)`` and ``MODELS.info(name)["modality"]`` work for every model."""

    def register(self, name: str, obj: Any = None, *, family: str, **info: Any) -> Any:
        if family not in FAMILIES:
            raise ValueError(f"video model {name!r}: family must be one of {', '.join(FAMILIES)}, "
                             f"got {family!r}")
        unknown = set(info) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"video model {name!r}: unknown attribute(s) {', '.join(sorted(unknown))}; "
                             f"valid: family, {', '.join(DEFAULTS)}")
        return super().register(name, obj, family=family, **{**DEFAULTS, **info})


MODELS = ModelRegistry("video model")


def build_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build model ``name`` (see ``MODELS``); ``options`` are fields of its config class
    (:class:`ModelConfig`: num_segments, depth, width, stem_stride, dropout, in_channels, input_size; plus
    the fields named by the entry's ``options``). The model keeps its config in ``.cfg``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    config_cls = MODELS.info(name)["config"]
    fields = set(config_cls.__dataclass_fields__) - {"name", "num_classes"}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(f"unknown model option(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(fields))}")
    cfg = config_cls(name=name, num_classes=num_classes, **options)
    model = MODELS[name](cfg)
    model.cfg = cfg
    return model


def build_from_config(cfg: dict) -> nn.Module:
    """Rebuild a model from ``asdict(ModelConfig)`` (as stored in checkpoint meta). A field the stored config
    lacks (it predates the field) takes the value its config class lists in ``STORED_DEFAULTS``, what such
    models were built with, so old checkpoints keep loading into the network that wrote them."""
    cfg = dict(cfg)
    if cfg.get("name") in MODELS:
        cfg = {**getattr(MODELS.info(cfg["name"])["config"], "STORED_DEFAULTS", {}), **cfg}
    return build_model(cfg.pop("name"), cfg.pop("num_classes"), **cfg)
