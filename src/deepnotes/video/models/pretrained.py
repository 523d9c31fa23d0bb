"""Start a video model from 2D ImageNet weights (``deepnotes video train --pretrained PATH``).

The file is read into a plain 2D :class:`~deepnotes.nn.resnet.ResNet` of the model's depth, width and stem
(:func:`deepnotes.nn.pretrained.load_resnet`: torchvision / timm ``.pth``, transformers, safetensors), then
copied into the model layer by layer through the plain names of :func:`~deepnotes.nn.resnet.core_layers`:

* 2D models (TSN, TSM, TEA, STM, TDN, TAM): the backbone's convs and BNs as they are; the modules a model
  added start as its paper's released code starts them, each module's ``init_pretrained(backbone)`` says
  how (see each model file);
* I3D: every Conv3d gets the 2D kernel repeated over its temporal length t and divided by t (the I3D
  paper's rule), BNs their 2D parameters and running statistics;
* R(2+1)D: each (2+1)D pair as :func:`~deepnotes.video.models.inflate.inflate_factorised_` fills it;
* two-stream: the RGB stream as above, then the flow stream from it by cross-modality init (the RGB stem
  averaged over colours, repeated over the flow channels).

The classifier (``fc``) keeps its fresh init: its classes are the video set's, not ImageNet's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepnotes.nn.pretrained import LoadReport, load_resnet, read_state
from deepnotes.nn.resnet import ResNet
from deepnotes.video.models.inflate import load_2d
from deepnotes.video.models.two_stream import TwoStream, cross_modality_init


def init_from_2d(model: nn.Module, source: str | Path,
                 state: dict[str, torch.Tensor] | None = None) -> LoadReport:
    """Fill ``model`` (any model of ``deepnotes.video.models`` with a ResNet backbone) from the 2D ResNet
    weights in ``source``; returns what was loaded (``report.inflated``: the layers inflated to 3D)."""
    if isinstance(model, TwoStream):
        report = init_from_2d(model.spatial, source, state)
        cross_modality_init(model.temporal, model.spatial)
        return report
    body = getattr(model, "backbone", None)
    if body is None or not hasattr(body, "stages"):
        raise ValueError(f"{model.cfg.name} has no ResNet backbone to load 2D weights into")
    cfg = model.cfg
    plain = ResNet(cfg.depth, cfg.width, cfg.in_channels, cfg.stem_stride, num_stages=len(body.stages))
    report = load_resnet(plain, source, read_state(source) if state is None else state)
    report.inflated = load_2d(body, plain)
    for module in model.modules():
        hook = getattr(module, "init_pretrained", None)
        if hook is not None:
            hook(body)
    return report
