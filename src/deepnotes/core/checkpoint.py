"""Safe, atomic checkpoint IO.

A checkpoint is one ``.safetensors`` file. Any nested state (model and optimizer state dicts, epoch,
RNG state, config) is split into tensors, stored by safetensors, and a JSON skeleton of everything else,
stored in the file's metadata header. Nothing is pickled, so loading an untrusted checkpoint cannot run
code. Writes go to a temporary file in the same folder and are renamed into place, so a crash never
leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_META_KEY = "deepnotes"
FORMAT_VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file and ``os.replace`` (atomic on POSIX and Windows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested structure by references, collecting them in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        n = 0
        while key in tensors:  # "a.b" and {"a": {"b": ..}} (or 0 and "0") flatten alike: keep both
            n += 1
            key = f"{prefix or '_'}#{n}"
        # clone: safetensors refuses tensors sharing storage (tied weights), and we want CPU, contiguous data
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"checkpoint keys must be str or int, got {type(k).__name__} at {prefix!r}")
            # int keys (optimizer state is keyed by parameter index) are kept distinguishable from str ones
            jk = f"#int:{k}" if isinstance(k, int) else k
            out[jk] = _split(v, f"{prefix}.{k}" if prefix else str(k), tensors)
        return out
    if isinstance(obj, tuple):
        return {_TUPLE: [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _join(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_TUPLE}:
            return tuple(_join(v, tensors) for v in obj[_TUPLE])
        return {(int(k[5:]) if k.startswith("#int:") else k): _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | Path, state: Mapping[str, Any],
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Save nested ``state`` (tensors anywhere inside dicts/lists/tuples) atomically to ``path``.

    ``meta`` is free JSON (model name, config, epoch) readable without loading any tensor.
    """
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(dict(state), "", tensors)
    header = {"format": FORMAT_VERSION, "state": skeleton, "meta": dict(meta or {})}
    data = st_save(tensors, metadata={_META_KEY: json.dumps(header, default=_json_default)})
    return atomic_write_bytes(path, data)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta`` of a checkpoint, without reading its tensors."""
    return _header(path)["meta"]


def _header(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but not a deepnotes checkpoint (no '{_META_KEY}' "
                         "header)")
    return json.loads(raw)


def load_checkpoint(path: str | Path,
                    device: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(state, meta)`` saved by :func:`save_checkpoint`; tensors are placed on ``device``."""
    header = _header(path)
    with safe_open(str(path), framework="pt", device=str(device)) as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    return _join(header["state"], tensors), header["meta"]
