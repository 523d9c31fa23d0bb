"""mmaction2's model zoo as run folders: ``deepnotes video import-mmaction CKPT --model tsn|tsm --out RUN``.

An mmaction2 TSN or TSM checkpoint (``torch.load(weights_only=True)``; its ``state_dict`` entry) becomes a
run folder that ``video eval`` and ``video predict`` read as they read a trained one. Every key of the
checkpoint is consumed or the import stops naming the first key it cannot place; every weight of ours must
come from the file. The conventions matched, from mmaction2's code (``models/backbones/resnet.py``,
``resnet_tsm.py``, ``models/heads/tsn_head.py``, ``tsm_head.py``, ``configs/_base_/models/tsn_r50.py``,
``tsm_r50.py``):

* backbone keys: ``backbone.conv1.conv`` / ``.bn`` (stem), ``backbone.layer{s}.{b}.conv{k}.conv`` / ``.bn``,
  ``backbone.layer{s}.{b}.downsample.conv`` / ``.bn`` (mmcv's ConvModule), ``style='pytorch'`` (stride in
  the 3x3 conv), BN eps 1e-5: the same network as ours (:mod:`deepnotes.nn.pretrained` maps the names);
* TSM (``ResNetTSM``, ``shift_place='blockres'``, ``shift_div=8``): ``TemporalShift`` wraps each block's
  ``conv1.conv``, so its keys read ``layer{s}.{b}.conv1.conv.net.weight``; it shifts inside the residual
  branch before conv1, channels ``[0, C/8)`` from frame t+1 and ``[C/8, C/4)`` from frame t-1, zeros at
  the clip's ends: what our TSM computes for C >= 8. mmaction2 shifts every block of ResNet-18/34/50 but
  every second block of a ResNet-101 (``n_round = 2``); ours shifts every block, so such a file is refused;
* head ``cls_head.fc_cls``: TSN's head averages the per-frame pooled features over the segments
  (``AvgConsensus``), then dropout (0.4) and the linear layer; TSM's applies dropout (0.5) and the linear
  layer per frame, then averages the scores. Ours is TSM's order; at test time dropout is off and the
  layer is linear, so both give the same scores. The dropout rates are kept in the run's model config;
* input: RGB frames (decord / ``RawFrameDecode`` with ``channel_order='rgb'``, ``to_rgb=False``) normalised
  with mean 123.675, 116.28, 103.53 and std 58.395, 57.12, 57.375 on 0-255 (ImageNet's 0.485, 0.456, 0.406
  and 0.229, 0.224, 0.225 on 0-1, what our pipeline uses); a ``data_preprocessor.mean/std`` in the file,
  if any, is used instead; test views: short side 256 and a centre crop of 224 (``--input-size 224``: our
  eval resizes to 8/7 of it), the frame at the centre of each of ``--segments`` segments.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from deepnotes.core import RunDir
from deepnotes.core.checkpoint import atomic_write_json
from deepnotes.nn.pretrained import HEAD, convert, load_resnet, read_state
from deepnotes.nn.resnet import DEPTHS
from deepnotes.video.config import TrainConfig
from deepnotes.video.data.lists import read_classes
from deepnotes.video.data.pipeline import data_meta
from deepnotes.video.models import build_model

ZOO_MODELS = ("tsn", "tsm")
DROPOUT = {"tsn": 0.4, "tsm": 0.5}  # mmaction2's TSNHead / TSMHead in their ResNet-50 configs
SHIFT = re.compile(r"backbone\.layer(\d)\.(\d+)\.conv1\.conv\.net\.")
BLOCK = re.compile(r"backbone\.layer(\d)\.(\d+)\.")
NORM_KEYS = ("data_preprocessor.mean", "data_preprocessor.std")


def read_mmaction(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmaction2 checkpoint (read with ``torch.load(weights_only=True)``)."""
    state = read_state(path)
    if not any(k.startswith("backbone.") for k in state):
        raise ValueError(f"{path} is not an mmaction2 recogniser checkpoint: no backbone.* keys (first keys: "
                         f"{', '.join(list(state)[:3])})")
    return state


def unshift(state: dict[str, torch.Tensor], model: str) -> dict[str, torch.Tensor]:
    """TSM's ``conv1.conv.net.*`` keys as plain ResNet keys; refuses a TSN file with shifts, a TSM file
    without, and a TSM file whose shifts skip blocks."""
    shifted = {(int(m[1]), int(m[2])) for k in state if (m := SHIFT.match(k))}
    if model == "tsn" and shifted:
        s, b = min(shifted)
        raise ValueError(f"the checkpoint shifts channels in time (backbone.layer{s}.{b}.conv1.conv.net): "
                         "a TSM checkpoint; pass --model tsm")
    if model == "tsm":
        blocks = {(int(m[1]), int(m[2])) for k in state if (m := BLOCK.match(k))}
        plain = sorted(blocks - shifted)
        if plain:
            s, b = plain[0]
            raise ValueError(f"block backbone.layer{s}.{b} has no temporal shift (no conv1.conv.net.* keys): "
                             "deepnotes' TSM shifts every block (mmaction2 skips every second block of a "
                             "ResNet-101, and a TSN checkpoint has none: --model tsn)")
    return {SHIFT.sub(lambda m: f"backbone.layer{m[1]}.{m[2]}.conv1.conv.", k): v for k, v in state.items()}


def architecture(state: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(depth, width, num_classes) of a converted mmaction2 state (keys in our names)."""
    blocks: dict[int, set[int]] = {}
    for key in state:
        if m := re.match(r"stages\.(\d)\.(\d+)\.", key):
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    layers = tuple(len(blocks[i]) for i in sorted(blocks))
    kind = "bottleneck" if any(".conv3." in k for k in state) else "basic"
    depth = next((d for d, (k, n) in DEPTHS.items() if (k, n) == (kind, layers)), None)
    if depth is None:
        raise ValueError(f"the backbone is a {kind} ResNet with blocks {layers} per stage: not one of ResNet "
                         f"{', '.join(map(str, DEPTHS))}")
    if HEAD + "weight" not in state:
        raise ValueError("the checkpoint has no cls_head.fc_cls.weight (a TSN/TSM head)")
    return depth, state["stem.0.weight"].shape[0], state[HEAD + "weight"].shape[0]


def normalisation(state: dict[str, torch.Tensor]) -> dict[str, tuple[float, ...]]:
    """The file's ``data_preprocessor`` mean/std (0-255) on the 0-1 scale, if it stores them."""
    found = {}
    for key in NORM_KEYS:
        if key in state:
            found[key.split(".")[1]] = tuple(float(v) / 255 for v in state[key].flatten())
    return found


def import_mmaction(ckpt: str | Path, model: str, out: str | Path, classes: str | Path | None = None,
                    segments: int = 8, input_size: int = 224) -> dict[str, Any]:
    """Write run folder ``out`` from an mmaction2 TSN/TSM checkpoint; returns what was imported."""
    if model not in ZOO_MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(ZOO_MODELS)}")
    run = Path(out)
    if (run / "checkpoint.safetensors").exists():
        raise FileExistsError(f"{run / 'checkpoint.safetensors'} exists; import into another --out folder")
    raw = read_mmaction(ckpt)
    state = unshift({k: v for k, v in raw.items() if k not in NORM_KEYS}, model)
    conv = convert(state, "mmcv")
    if conv.unmapped:
        raise ValueError(f"{ckpt}: key {conv.unmapped[0]!r} is not part of an mmaction2 ResNet "
                         f"{model.upper()} (backbone.* conv/bn, cls_head.fc_cls.*)")
    depth, width, k = architecture(conv.state)
    names = read_classes(classes) if classes else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{classes} names {len(names)} classes but the checkpoint's head has {k}")
    net = build_model(model, k, num_segments=segments, depth=depth, width=width, stem_stride=4,
                      dropout=DROPOUT[model], input_size=input_size)
    report = load_resnet(net.backbone, ckpt, state, layout="mmcv")  # a missing weight: an error naming it
    leftover = [key for key in report.unused if not key.startswith("cls_head.fc_cls.")]
    if leftover:
        raise ValueError(f"{ckpt}: {leftover[0]!r} has no place in a ResNet-{depth} {model.upper()}")
    with torch.no_grad():
        net.fc.weight.copy_(report.head["weight"])
        net.fc.bias.copy_(report.head["bias"])
    cfg = TrainConfig(model=model, train="", out=str(run), segments=segments, input_size=input_size,
                      depth=depth, width=width, stem_stride=4, dropout=DROPOUT[model], **normalisation(raw))
    meta = {"model": model, "model_config": asdict(net.cfg), "classes": names, "data": data_meta(cfg),
            "imported": {"from": "mmaction2", "checkpoint": str(ckpt)}}
    RunDir(run).save({"model": net.state_dict()}, meta)
    info = {"checkpoint": str(ckpt), "model": model, "depth": depth, "num_classes": k, "segments": segments,
            "keys": len(raw), "mean": list(cfg.mean), "std": list(cfg.std)}
    atomic_write_json(run / "imported.json", info)
    return info
