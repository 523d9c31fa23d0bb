"""ImageNet weights for the shared ResNet, from the files people have.

Three layouts are read, told apart by their keys (a prefix ``module.``, ``backbone.`` or ``resnet.`` is
dropped first):

Our name (``deepnotes.nn.ResNet``) and the same weight in each layout (``i`` the 0-based stage, ``j`` the
block, ``k`` the conv of the block, 1-based):

* ``stem.0`` (the 7x7 conv): torchvision/timm ``conv1``; transformers ``embedder.embedder.convolution``;
  mmcv (mmaction2's ResNet) ``conv1.conv``.
* ``stem.1`` (its BN): ``bn1``; ``embedder.embedder.normalization``; ``conv1.bn``.
* ``stages.i.j.conv{k}.0`` (conv): ``layer{i+1}.j.conv{k}``;
  ``encoder.stages.i.layers.j.layer.{k-1}.convolution``; ``layer{i+1}.j.conv{k}.conv``.
* ``stages.i.j.conv{k}.1`` (BN): ``layer{i+1}.j.bn{k}``;
  ``encoder.stages.i.layers.j.layer.{k-1}.normalization``; ``layer{i+1}.j.conv{k}.bn``.
* ``stages.i.j.downsample.0`` / ``.1`` (shortcut conv / BN): ``layer{i+1}.j.downsample.0`` / ``.1``;
  ``encoder.stages.i.layers.j.shortcut.convolution`` / ``.normalization``; ``layer{i+1}.j.downsample.conv`` /
  ``.bn``.
* the classifier (not part of the backbone; returned as ``LoadReport.head``): ``fc``; ``classifier.1``
  (``ResNetForImageClassification``); ``cls_head.fc_cls`` (mmaction2).

Our ResNet keeps its own names (every run folder trained before still loads as it is) and this module maps
the others onto them. The networks compute the same function: stride in the 3x3 conv of a bottleneck
(torchvision's "v1.5", transformers' ``downsample_in_bottleneck=False``, mmcv's ``style='pytorch'``), a
projection shortcut where the shape changes, BatchNorm eps 1e-5 everywhere. Our ResNet equals theirs with
its standard stem (``stem_stride=4``: 7x7 stride 2 and a 3x3 max-pool) and 4 stages; a truncated
``num_stages=3`` backbone loads the first three (the fourth's keys are reported unused) and a stem with
other input channels (stacked optical flow) is left at its init and reported.

Files are read with ``torch.load(weights_only=True)`` (no code runs) or safetensors; a transformers
``save_pretrained`` folder is read through its ``model.safetensors`` (or ``pytorch_model.bin``).
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from deepnotes.nn.resnet import DEPTHS, ResNet, core_layers

# RGB statistics of ImageNet on the 0-1 scale: what ImageNet-trained weights expect (mmaction2 and mmpose
# write them on 0-255: mean 123.675, 116.28, 103.53, std 58.395, 57.12, 57.375)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PREFIXES = ("module.", "backbone.", "resnet.")
HEAD = "fc."  # the classifier's keys after conversion: fc.weight, fc.bias

# layout -> [(pattern on the file's key, our key)]; a key no pattern takes is not the ResNet's. Only the
# tensors convs and BNs have match, so one layout's keys never pass for another's
P = r"(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)"
S = r"(?P<i>\d)\.(?P<j>\d+)"


def _stage(m: re.Match) -> str:
    return f"stages.{int(m['i']) - 1}.{m['j']}"


def _tconv(m: re.Match, unit: int) -> str:
    """transformers' ``layer.{k}`` (0-based) -> our ``conv{k+1}``, its conv (unit 0) or BN (unit 1)."""
    return f"stages.{m['i']}.{m['j']}.conv{int(m['k']) + 1}.{unit}.{m['p']}"


_T = r"encoder\.stages\.(?P<i>\d)\.layers\.(?P<j>\d+)\."
RULES: dict[str, list[tuple[str, Callable[[re.Match], str]]]] = {
    "ours": [(rf"(?P<k>stem\.[01]|stages\.\d\.\d+\.(conv\d|downsample)\.[01])\.{P}",
              lambda m: f"{m['k']}.{m['p']}"),
             (r"fc\.(?P<p>weight|bias)", lambda m: HEAD + m["p"])],
    "torchvision": [
        (rf"conv1\.{P}", lambda m: f"stem.0.{m['p']}"),
        (rf"bn1\.{P}", lambda m: f"stem.1.{m['p']}"),
        (rf"layer{S}\.conv(?P<k>\d)\.{P}", lambda m: f"{_stage(m)}.conv{m['k']}.0.{m['p']}"),
        (rf"layer{S}\.bn(?P<k>\d)\.{P}", lambda m: f"{_stage(m)}.conv{m['k']}.1.{m['p']}"),
        (rf"layer{S}\.downsample\.(?P<k>[01])\.{P}", lambda m: f"{_stage(m)}.downsample.{m['k']}.{m['p']}"),
        (r"fc\.(?P<p>weight|bias)", lambda m: HEAD + m["p"]),
    ],
    "transformers": [
        (rf"embedder\.embedder\.convolution\.{P}", lambda m: f"stem.0.{m['p']}"),
        (rf"embedder\.embedder\.normalization\.{P}", lambda m: f"stem.1.{m['p']}"),
        (rf"{_T}layer\.(?P<k>\d)\.convolution\.{P}", lambda m: _tconv(m, 0)),
        (rf"{_T}layer\.(?P<k>\d)\.normalization\.{P}", lambda m: _tconv(m, 1)),
        (rf"{_T}shortcut\.convolution\.{P}", lambda m: f"stages.{m['i']}.{m['j']}.downsample.0.{m['p']}"),
        (rf"{_T}shortcut\.normalization\.{P}", lambda m: f"stages.{m['i']}.{m['j']}.downsample.1.{m['p']}"),
        (r"classifier\.1\.(?P<p>weight|bias)", lambda m: HEAD + m["p"]),
    ],
    "mmcv": [
        (rf"conv1\.conv\.{P}", lambda m: f"stem.0.{m['p']}"),
        (rf"conv1\.bn\.{P}", lambda m: f"stem.1.{m['p']}"),
        (rf"layer{S}\.conv(?P<k>\d)\.conv\.{P}", lambda m: f"{_stage(m)}.conv{m['k']}.0.{m['p']}"),
        (rf"layer{S}\.conv(?P<k>\d)\.bn\.{P}", lambda m: f"{_stage(m)}.conv{m['k']}.1.{m['p']}"),
        (rf"layer{S}\.downsample\.conv\.{P}", lambda m: f"{_stage(m)}.downsample.0.{m['p']}"),
        (rf"layer{S}\.downsample\.bn\.{P}", lambda m: f"{_stage(m)}.downsample.1.{m['p']}"),
        (r"cls_head\.fc_cls\.(?P<p>weight|bias)", lambda m: HEAD + m["p"]),
    ],
}
_COMPILED = {name: [(re.compile(p), f) for p, f in rules] for name, rules in RULES.items()}


@dataclass
class Converted:
    """A state dict in our names: ``state`` (ours -> tensor, the classifier under ``fc.``), ``origin`` (ours
    -> the file's key), ``unmapped`` (the file's keys that are not ResNet weights) and the ``layout``."""

    state: dict[str, torch.Tensor]
    origin: dict[str, str]
    unmapped: list[str]
    layout: str


def _strip(key: str) -> str:
    for prefix in PREFIXES:
        key = key.removeprefix(prefix)
    return key


def convert(state: Mapping[str, torch.Tensor], layout: str | None = None) -> Converted:
    """``state`` (any of the layouts of :data:`RULES`, detected from its keys unless given) in our names."""
    layouts = [layout] if layout else list(RULES)
    best = None
    for name in layouts:
        if name not in _COMPILED:
            raise ValueError(f"unknown ResNet layout {name!r}; valid: {', '.join(RULES)}")
        out, origin, unmapped = {}, {}, []
        for key, value in state.items():
            ours = _rename(_strip(key), _COMPILED[name])
            if ours is None:
                unmapped.append(key)
            else:
                out[ours], origin[ours] = value, key
        if best is None or len(out) > len(best.state):
            best = Converted(out, origin, unmapped, name)
    if not best.state:
        raise ValueError(f"no ResNet weights found: keys like {', '.join(list(state)[:3])} are none of the "
                         f"layouts {', '.join(RULES)} (see deepnotes.nn.pretrained)")
    return best


def _rename(key: str, rules: list[tuple[re.Pattern, Callable[[re.Match], str]]]) -> str | None:
    for pattern, make in rules:
        m = pattern.fullmatch(key)
        if m:
            return make(m)
    return None


def torchvision_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision (or timm) ResNet state dict in our names (its classifier as ``fc.weight/bias``)."""
    return convert(state, "torchvision").state


def transformers_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``ResNetModel`` / ``ResNetForImageClassification`` state dict in our names."""
    return convert(state, "transformers").state


def state_dict_to_torchvision(source: ResNet | Mapping[str, torch.Tensor],
                              fc: nn.Linear | None = None) -> dict[str, torch.Tensor]:
    """Our backbone's weights (a :class:`ResNet`, wrapped or not, or a state dict in our plain names) in
    torchvision's names, plus ``fc.weight/bias`` from ``fc``: what ``torchvision.models.resnet18()`` loads
    (with ``strict=False`` when there is no ``fc``)."""
    state = _plain_state(source) if isinstance(source, nn.Module) else dict(source)
    out = {}
    for key, value in state.items():
        out[_ours_to_torchvision(key)] = value.detach().clone()
    if fc is not None:
        out["fc.weight"], out["fc.bias"] = fc.weight.detach().clone(), fc.bias.detach().clone()
    return out


def _ours_to_torchvision(key: str) -> str:
    m = re.fullmatch(r"stem\.(?P<k>[01])\.(?P<p>.+)", key)
    if m:
        return f"{'conv1' if m['k'] == '0' else 'bn1'}.{m['p']}"
    m = re.fullmatch(r"stages\.(?P<i>\d)\.(?P<j>\d+)\.(?P<u>conv\d|downsample)\.(?P<k>[01])\.(?P<p>.+)", key)
    if m is None:
        raise ValueError(f"{key!r} is not a ResNet weight in our names")
    where = f"layer{int(m['i']) + 1}.{m['j']}"
    if m["u"] == "downsample":
        return f"{where}.downsample.{m['k']}.{m['p']}"
    return f"{where}.{m['u'] if m['k'] == '0' else 'bn' + m['u'][4:]}.{m['p']}"


def _plain_state(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's own weights under their plain 2D names (see :func:`core_layers`)."""
    out = {}
    for name, layer in core_layers(backbone).items():
        for pname, value in _own_tensors(layer):
            out[f"{name}.{pname}"] = value
    return out


def _own_tensors(layer: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]


def read_state(source: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: ``.safetensors``, a ``torch.save`` file (read with
    ``weights_only=True``; a ``state_dict`` / ``model`` entry is unwrapped) or a transformers
    ``save_pretrained`` folder."""
    path = Path(source)
    if path.is_dir():
        path = _pretrained_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is not a weights file torch.load(weights_only=True) reads: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _pretrained_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if len(shards) == 1:
            return folder / shards[0]
        raise ValueError(f"{folder}: sharded weights ({len(shards)} files) are not read; a ResNet fits one")
    raise FileNotFoundError(f"{folder} has no model.safetensors or pytorch_model.bin (a save_pretrained "
                            "folder)")


@dataclass
class LoadReport:
    """What :func:`load_resnet` did: ``loaded`` (our keys taken from the file), ``initialised`` (ours left at
    their init: a stem with other input channels, BN counters the file lacks), ``unused`` (the file's keys
    not taken: a classifier, a fourth stage a truncated backbone lacks, other modules), ``head`` (the
    file's classifier ``{"weight", "bias"}``, when it has one) and the file's ``layout``; ``inflated``:
    the layers a caller turned 3D (video's I3D and R(2+1)D)."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    head: dict[str, torch.Tensor] = field(default_factory=dict)
    inflated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = f"{self.source} ({self.layout} layout): {len(self.loaded)} tensors loaded"
        if self.initialised:
            line += f"; left at init: {', '.join(self.initialised[:4])}{' ...' * (len(self.initialised) > 4)}"
        if self.unused:
            line += f"; unused from the file: {len(self.unused)} ({', '.join(self.unused[:3])}" \
                    f"{', ...' * (len(self.unused) > 3)})"
        return line


def describe(state: Mapping[str, torch.Tensor]) -> str:
    """``"ResNet-50 of width 64, 4 stages"`` for a state dict in our names (for error messages)."""
    blocks: dict[int, set[int]] = {}
    for key in state:
        m = re.match(r"stages\.(\d)\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    layers = tuple(len(blocks[i]) for i in sorted(blocks))
    kind = "bottleneck" if any(".conv3." in k for k in state) else "basic"
    depth = next((d for d, (k, n) in DEPTHS.items() if k == kind and n[:len(layers)] == layers), None)
    width = state["stem.0.weight"].shape[0] if "stem.0.weight" in state else "?"
    name = f"ResNet-{depth}" if depth else f"a {kind} ResNet with blocks {layers}"
    return f"{name} of width {width}, {len(layers)} stages"


def load_resnet(backbone: nn.Module, source: str | Path, state: Mapping[str, torch.Tensor] | None = None,
                layout: str | None = None) -> LoadReport:
    """Load ImageNet (or any) ResNet weights from ``source`` into ``backbone`` (our :class:`ResNet`, or a
    video model's backbone with temporal modules wrapped around its convs: see :func:`core_layers`).

    The layout is detected from the keys. Every weight of ours must be in the file with its shape, else a
    ValueError names the first missing or mismatched key (a different depth or width, a 3x3 stem); nothing
    is copied unless everything fits. ``state``: the file's tensors when already read; ``layout``: one of
    :data:`RULES` instead of the one detected.
    """
    conv = convert(read_state(source) if state is None else state, layout)
    report = LoadReport(str(source), conv.layout, unused=list(conv.unmapped))
    pending = []
    for name, layer in core_layers(backbone).items():
        for pname, value in _own_tensors(layer):
            key = f"{name}.{pname}"
            if _fits(key, value, conv, report, lambda: describe(_plain_state(backbone))):
                pending.append((value, conv.state[key]))
                report.loaded.append(key)
    with torch.no_grad():
        for value, src in pending:
            value.copy_(src.to(value.dtype))
    taken = set(report.loaded)
    report.unused += [conv.origin[k] for k in conv.state if k not in taken]
    report.head = {k[len(HEAD):]: v for k, v in conv.state.items() if k.startswith(HEAD)}
    return report


def _fits(key: str, value: torch.Tensor, conv: Converted, report: LoadReport,
          model: Callable[[], str]) -> bool:
    """Whether the file's ``key`` loads into ``value``; False (and noted in ``report.initialised``) for what
    stays at its init; a ValueError naming the key for a missing or mismatched weight."""
    src = conv.state.get(key)
    if src is None and key.endswith("num_batches_tracked"):  # older files have no BN counters
        report.initialised.append(key)
        return False
    if src is None:
        raise ValueError(f"{report.source}: no weight for {key!r} ({_theirs(key, conv.layout)}); the file "
                         f"holds a {describe(conv.state)}, the model a {model()}")
    if src.shape == value.shape:
        return True
    if key == "stem.0.weight" and src.shape[0] == value.shape[0] and src.shape[2:] == value.shape[2:]:
        # a stem for other inputs (stacked flow): left at init; cross-modality init is the caller's choice
        # (deepnotes.video.models.two_stream.cross_modality_init)
        report.initialised.append(key)
        return False
    raise ValueError(f"{report.source}: {conv.origin[key]!r} (our {key!r}) is {tuple(src.shape)} in the file "
                     f"but {tuple(value.shape)} in the model; the file holds a {describe(conv.state)}, the "
                     f"model a {model()}")


def _theirs(key: str, layout: str) -> str:
    """Our key in torchvision's names, to tell the user what the file lacks."""
    try:
        return f"torchvision: {_ours_to_torchvision(key)}" if layout != "ours" else key
    except ValueError:
        return key


def save_torchvision(backbone: ResNet, path: str | Path, fc: nn.Linear | None = None) -> Path:
    """Write ``backbone`` (and a classifier) as a torchvision-layout ``.pth`` state dict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict_to_torchvision(backbone, fc), path)
    return path


__all__ = ["HEAD", "IMAGENET_MEAN", "IMAGENET_STD", "RULES", "Converted", "LoadReport", "convert", "describe",
           "load_resnet", "read_state", "save_torchvision", "state_dict_to_torchvision",
           "torchvision_to_ours", "transformers_to_ours"]
