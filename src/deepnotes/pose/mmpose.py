"""mmpose top-down ResNet checkpoints (heatmap and RLE heads) as deepnotes pose runs, and back.

mmpose's ``TopdownPoseEstimator`` stores ``backbone.*`` (mmpose's ``ResNet``, ``style='pytorch'``: the names
and layout of torchvision's ResNet) and ``head.*`` (mmpose 1.x; ``keypoint_head.*`` in 0.x). The conventions
matched here (read from mmpose's code; docs/pose.md lists them with file names):

* input: RGB, ImageNet mean/std (its ``PoseDataPreprocessor``: 123.675, 116.28, 103.53 / 58.395, 57.12,
  57.375 on 0..255) -> ``PoseConfig.norm = "imagenet"``;
* crops: the box centre at (W/2, H/2) of the crop (``get_warp_matrix``), box padded by 1.25 and widened to
  the crop's aspect ratio -> ``PoseConfig.frame = "mmpose"``;
* heatmap head (``HeatmapHead`` / 0.x ``TopdownHeatmapSimpleHead``): ``deconv_layers`` = n x (4x4
  stride-2 ConvTranspose2d without bias, BatchNorm, ReLU), then ``final_layer`` (1x1 conv with bias); its
  codec (``MSRAHeatmap``) reads a heatmap pixel as ``crop / stride``, refines by a quarter pixel from index
  2 on, and the flip test shifts mirrored maps one pixel (``shift_heatmap``): all in the ``mmpose`` frame;
* RLE head (``RLEHead``; 0.x ``DeepposeRegressionHead`` with ``RLELoss``): global average pooling (the
  ``GlobalAveragePooling`` neck) -> ``pool = "avg"``; ``fc`` gives K x (x, y, sigma_x, sigma_y) with
  ``x / W`` units and a sigmoid on sigma -> our ``fc_mu`` and ``fc_sigma`` rows; score ``1 - mean(sigma)``;
  the flow ``loss_module.flow_model`` (0.x ``loss.flow_model``) runs its 6 coupling layers last to first
  (``backward_p``), ours first to last: layer j here is their layer 5 - j, masks included; its prior
  buffers ``loc``/``cov`` must be the standard normal ours assumes.

Anything else (another backbone, extra conv layers, deconvolutions of different widths or kernels, another
number of joints) is refused with the first key or shape that does not fit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from deepnotes.core import RunDir, atomic_write_json, save_checkpoint
from deepnotes.core.rundir import CHECKPOINT
from deepnotes.nn.pretrained import state_dict_to_torchvision
from deepnotes.nn.resnet import DEPTHS, ResNet
from deepnotes.pose.config import PoseConfig
from deepnotes.pose.model import PoseModel
from deepnotes.pose.skeleton import NUM_JOINTS

IMPORTED_FROM = "mmpose"
_HEAD_PREFIXES = ("head.", "keypoint_head.")  # mmpose 1.x, 0.x
_FLOW_PREFIXES = ("loss_module.flow_model.", "loss.flow_model.")  # mmpose 1.x, 0.x


class CheckpointError(ValueError):
    """A checkpoint whose keys or shapes our model cannot hold; the message names the first one."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an mmpose ``.pth`` (``torch.load(weights_only=True)``: no code runs), unwrapping
    ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals and corrupt files come in many types
        raise CheckpointError(f"{path}: not a checkpoint torch.load(weights_only=True) reads: {exc}") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (or one under 'state_dict')")
    return state


def _backbone_shape(state: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(depth, width, stages) of the ``backbone.*`` ResNet in ``state``."""
    if "backbone.conv1.weight" not in state:
        first = next(iter(state), None)
        raise CheckpointError(f"missing key 'backbone.conv1.weight' (first key: {first!r}): not an mmpose "
                              "top-down ResNet checkpoint")
    blocks = []
    for stage in range(1, 5):
        n = len({int(m.group(1)) for k in state if (m := re.match(rf"backbone\.layer{stage}\.(\d+)\.", k))})
        if n == 0:
            break
        blocks.append(n)
    kind = "bottleneck" if "backbone.layer1.0.conv3.weight" in state else "basic"
    depth = next((d for d, (k, n) in DEPTHS.items() if k == kind and tuple(n[:len(blocks)]) == tuple(blocks)),
                 None)
    if depth is None or not blocks:
        valid = ", ".join(f"{d} {n}" for d, (k, n) in DEPTHS.items() if k == kind)
        raise CheckpointError(f"a {kind} ResNet with {blocks} blocks per stage is not one of ours ({valid})")
    return depth, int(state["backbone.conv1.weight"].shape[0]), len(blocks)


def _split_prefix(state: dict[str, torch.Tensor], prefixes: tuple[str, ...], what: str) -> str:
    found = [p for p in prefixes if any(k.startswith(p) for k in state)]
    if not found:
        raise CheckpointError(f"no {what} keys (expected names starting with {' or '.join(prefixes)})")
    return found[0]


def infer_config(state: dict[str, torch.Tensor], head: str, input_hw: tuple[int, int]) -> PoseConfig:
    """The :class:`PoseConfig` that holds ``state``'s network (``head``: ``heatmap`` or ``rle``)."""
    depth, width, stages = _backbone_shape(state)
    hp = _split_prefix(state, _HEAD_PREFIXES, "head")
    common = dict(input_hw=tuple(input_hw), depth=depth, width=width, stages=stages, stem_stride=4,
                  frame="mmpose", norm="imagenet")
    has_deconv = any(k.startswith(hp + "deconv_layers.") for k in state)
    if head == "heatmap":
        if not has_deconv:
            raise CheckpointError(f"missing key '{hp}deconv_layers.0.weight': this is not a heatmap head "
                                  f"(its keys: {_head_keys(state, hp)}); try --head rle")
        deconvs = [k for k in state if re.fullmatch(rf"{re.escape(hp)}deconv_layers\.\d+\.weight", k)
                   and state[k].dim() == 4]
        channels = int(state[deconvs[0]].shape[1])
        n = len(deconvs)
        fh, fw = _feature_hw(depth, width, stages, input_hw)
        return PoseConfig(head="heatmap", heatmap_hw=(fh * 2**n, fw * 2**n), deconv_channels=channels,
                          **common)
    if head == "rle":
        if has_deconv or f"{hp}fc.weight" not in state:
            raise CheckpointError(f"missing key '{hp}fc.weight': this is not an RLE head (its keys: "
                                  f"{_head_keys(state, hp)}); try --head heatmap")
        return PoseConfig(head="rle", pool="avg", **common)
    raise ValueError(f"unknown head {head!r}; valid: heatmap, rle")


def _head_keys(state: dict[str, torch.Tensor], hp: str) -> str:
    keys = sorted({".".join(k.split(".")[:2]) for k in state if k.startswith(hp)})
    return ", ".join(keys[:6]) or "none"


def _feature_hw(depth: int, width: int, stages: int, input_hw: tuple[int, int]) -> tuple[int, int]:
    with torch.no_grad():
        feats = ResNet(depth, width, 3, stem_stride=4, num_stages=stages).eval()(torch.zeros(1, 3, *input_hw))
    return int(feats.shape[2]), int(feats.shape[3])


def _heatmap_names(ours: str, hp: str) -> str | None:
    if ours.startswith("head.upsample."):
        return hp + "deconv_layers." + ours.removeprefix("head.upsample.")
    if ours.startswith("head.final."):
        return hp + "final_layer." + ours.removeprefix("head.final.")
    return None


def _flow_name(ours: str, hp: str, fp: str, layers: int) -> str | None:
    m = re.fullmatch(r"head\.flow\.([st])\.(\d+)\.(.+)", ours)
    if m:  # their layers run last to first
        return f"{hp}{fp}{m.group(1)}.{layers - 1 - int(m.group(2))}.{m.group(3)}"
    return f"{hp}{fp}mask" if ours == "head.flow.masks" else None


def key_map(model: PoseModel, hp: str = "head.", fp: str = _FLOW_PREFIXES[0]) -> dict[str, str]:
    """Our state-dict name -> mmpose's, for every entry but RLE's ``fc_mu``/``fc_sigma`` (one ``fc``
    there). The backbone's names are torchvision's (``nn.pretrained``'s mapping) under ``backbone.``."""
    backbone = model.backbone.state_dict()
    # state_dict_to_torchvision renames key by key, in order
    names = {f"backbone.{ours}": f"backbone.{theirs}"
             for ours, theirs in zip(backbone, state_dict_to_torchvision(backbone), strict=True)}
    layers = len(model.head.flow.s) if getattr(model.head, "flow", None) is not None else 0
    for ours in model.state_dict():
        if (theirs := _heatmap_names(ours, hp) or _flow_name(ours, hp, fp, layers)) is not None:
            names[ours] = theirs
    return names


def _expected(model: PoseModel, hp: str, fp: str) -> tuple[dict[str, str], list[str]]:
    """(our name -> theirs, every key of theirs in our order): RLE adds ``fc`` and the prior's buffers."""
    names = key_map(model, hp, fp)
    theirs = list(names.values())
    if model.config.head == "rle":
        theirs += [hp + "fc.weight", hp + "fc.bias", hp + fp + "loc", hp + fp + "cov"]
    return names, theirs


def _check_keys(state: dict[str, torch.Tensor], theirs: list[str]) -> None:
    """Every key of ``state`` is one we read, and every one we read is there (BatchNorm's
    ``num_batches_tracked`` may be absent: a counter, not a weight)."""
    known = set(theirs)
    unknown = next((k for k in state if k not in known), None)
    if unknown is not None:
        raise CheckpointError(f"unknown key {unknown!r}: our ResNet + head has nothing to hold it")
    missing = next((k for k in theirs if k not in state and not k.endswith("num_batches_tracked")), None)
    if missing is not None:
        raise CheckpointError(f"missing key {missing!r}")


def _fc_split(fc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mmpose's RLE ``fc`` rows (K x (x, y, sigma_x, sigma_y)) -> (mu rows K x 2, sigma rows K x 2)."""
    rest = fc.shape[1:]
    rows = fc.reshape(NUM_JOINTS, 4, *rest)
    return rows[:, :2].reshape(2 * NUM_JOINTS, *rest), rows[:, 2:].reshape(2 * NUM_JOINTS, *rest)


def _rle_state(state: dict[str, torch.Tensor], hp: str, fp: str, model: PoseModel) -> dict[str, torch.Tensor]:
    w, b = state[hp + "fc.weight"], state[hp + "fc.bias"]
    want = (4 * NUM_JOINTS, model.head.features.dim)
    if tuple(w.shape) != want:
        raise CheckpointError(f"{hp}fc.weight has shape {tuple(w.shape)}; an RLE head on globally pooled "
                              f"features of this backbone needs {want} ({NUM_JOINTS} joints x (x, y, "
                              "sigma_x, sigma_y))")
    loc, cov = state[hp + fp + "loc"], state[hp + fp + "cov"]
    if not (torch.equal(loc, torch.zeros(2)) and torch.equal(cov, torch.eye(2))):
        raise CheckpointError(f"{hp}{fp}loc/cov: the flow's prior is not the standard normal ours assumes")
    (mu_w, sigma_w), (mu_b, sigma_b) = _fc_split(w), _fc_split(b)
    return {"head.fc_mu.weight": mu_w, "head.fc_mu.bias": mu_b, "head.fc_sigma.weight": sigma_w,
            "head.fc_sigma.bias": sigma_b}


def from_mmpose(state: dict[str, torch.Tensor], head: str, input_hw: tuple[int, int] = (256, 192)
                ) -> PoseModel:
    """Our model holding mmpose state dict ``state`` (``head``: ``heatmap`` or ``rle``), eval mode."""
    model = PoseModel(infer_config(state, head, input_hw))
    hp = _split_prefix(state, _HEAD_PREFIXES, "head")
    fp = _split_prefix({k.removeprefix(hp): v for k, v in state.items() if k.startswith(hp)},
                       _FLOW_PREFIXES, "RLE flow") if head == "rle" else _FLOW_PREFIXES[0]
    names, theirs = _expected(model, hp, fp)
    _check_keys(state, theirs)
    own = model.state_dict()
    loaded = {}
    for ours, key in names.items():
        value = state.get(key, own[ours])  # only num_batches_tracked may be absent (checked)
        if ours == "head.flow.masks":
            value = value.flip(0)  # their layers run in the other order
        if value.shape != own[ours].shape:
            raise CheckpointError(f"{key} has shape {tuple(value.shape)}, ours {tuple(own[ours].shape)} "
                                  f"({ours})")
        loaded[ours] = value
    if head == "rle":
        loaded.update(_rle_state(state, hp, fp, model))
    model.load_state_dict(loaded)
    return model.eval()


def to_mmpose(model: PoseModel, version: int = 1) -> dict[str, torch.Tensor]:
    """``model``'s weights in an mmpose checkpoint's layout (``version`` 1: ``head.`` and ``loss_module.``;
    0: ``keypoint_head.`` and ``loss.``). Only models in mmpose's conventions (``frame='mmpose'``, ImageNet
    normalisation, a 4x stem, RLE on pooled features) mean to mmpose what they mean here."""
    cfg = model.config
    if (cfg.frame, cfg.norm, cfg.stem_stride) != ("mmpose", "imagenet", 4) or (
            cfg.head == "rle" and cfg.pool != "avg") or cfg.head not in ("heatmap", "rle"):
        raise ValueError("only a heatmap or RLE (pool avg) model with frame='mmpose', norm='imagenet' and a "
                         "4x stem matches mmpose's conventions")
    hp, fp = ("head.", _FLOW_PREFIXES[0]) if version == 1 else ("keypoint_head.", _FLOW_PREFIXES[1])
    own = model.state_dict()
    names, _ = _expected(model, hp, fp)
    state = {theirs: (own[ours].flip(0) if ours == "head.flow.masks" else own[ours]).clone()
             for ours, theirs in names.items()}
    if cfg.head == "rle":
        def rows(mu, sigma):
            return torch.cat([mu.reshape(NUM_JOINTS, 2, -1), sigma.reshape(NUM_JOINTS, 2, -1)], dim=1)

        state[hp + "fc.weight"] = rows(own["head.fc_mu.weight"], own["head.fc_sigma.weight"]).reshape(
            4 * NUM_JOINTS, -1)
        state[hp + "fc.bias"] = rows(own["head.fc_mu.bias"], own["head.fc_sigma.bias"]).reshape(-1)
        state[hp + fp + "loc"], state[hp + fp + "cov"] = torch.zeros(2), torch.eye(2)
    return state


def import_mmpose(checkpoint: str | Path, head: str, out: str | Path, input_hw: tuple[int, int] = (256, 192)
                  ) -> dict[str, Any]:
    """Write run folder ``out`` (``checkpoint.safetensors`` that ``pose eval``/``predict`` read, and
    ``import.json``) from mmpose checkpoint ``checkpoint``; refuses a folder that holds a checkpoint."""
    if (Path(out) / CHECKPOINT).exists():
        raise FileExistsError(f"{Path(out) / CHECKPOINT} exists; import into another --out")
    state = read_state_dict(checkpoint)
    model = from_mmpose(state, head, input_hw)
    run = RunDir(out)  # created only once the checkpoint was read and fits
    cfg = model.config
    meta = {"model": "pose", "head": cfg.head, "config": cfg.to_dict(), "imported_from": IMPORTED_FROM,
            "source": str(checkpoint)}
    save_checkpoint(run.checkpoint_path, {"model": model.state_dict()}, meta)
    info = {"source": str(checkpoint), "imported_from": IMPORTED_FROM, "keys": len(state), **meta,
            "parameters": sum(p.numel() for p in model.parameters())}
    atomic_write_json(run.path / "import.json", info)
    return info
