"""Config files mapped onto config dataclasses, and the one size syntax (``H,W``; one number = square).

Every train verb takes ``--config FILE.yaml``: the file's keys are the config dataclass's fields (the flag
names with underscores). The resolved config is built in layers, later ones winning:

    dataclass defaults < the run's stored config.json (with --resume) < --config FILE < flags given

An unknown key is an error naming the key, the file and the valid keys; values are checked against the
field's type (an int field refuses 1.5 and "8", a size field takes ``64,48``, ``[64, 48]`` or ``64``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the file and key."""


def parse_hw(value: Any, name: str = "size") -> tuple[int, int]:
    """``"64,48"`` / ``[64, 48]`` / ``(64, 48)`` -> (64, 48); ``"112"`` / ``112`` -> (112, 112) (square).

    ``H,W`` is the one size syntax of every flag and config key (image crops, heatmaps, synthetic frames)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected H,W or one number, got {value!r}")
    if isinstance(value, int):
        parts: list[Any] = [value, value]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        text = str(value).strip().replace("x", ",")
        parts = [p.strip() for p in text.split(",")]
        if len(parts) == 1:
            parts = parts * 2
    try:
        if len(parts) != 2 or any(isinstance(p, bool) or float(p) != int(float(p)) for p in parts):
            raise ValueError
        h, w = (int(float(p)) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected H,W (two integers) or one integer for a square, "
                          f"got {value!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"{name}: sizes must be positive, got {value!r}")
    return h, w


def parse_numbers(value: Any, name: str) -> tuple[float, ...]:
    """``"1,0.875,0.75"`` / ``[1, 0.875, 0.75]`` / one number -> a tuple of floats (a ``tuple[float, ...]``
    field: the same list as a flag or a config key)."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
    parts = list(parts) if isinstance(parts, list | tuple) else [parts]
    try:
        if not parts or any(isinstance(p, bool) for p in parts):
            raise ValueError
        return tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected comma-separated numbers, got {value!r}") from None


def format_hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]},{hw[1]}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (``yaml.safe_load``) or JSON file holding one mapping of config keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys (key: value lines), "
                          f"got {type(data).__name__}")
    return data


def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_keys(cls: type, data: Mapping[str, Any], source: str) -> None:
    """Refuse keys that are not fields of ``cls``, naming the first unknown one and the valid ones."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        close = [v for v in valid if v.replace("_", "") == str(unknown[0]).replace("-", "").replace("_", "")]
        hint = f" (did you mean {close[0]!r}? keys use underscores)" if close else ""
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}{hint}; valid keys: {', '.join(valid)}")


def coerce(value: Any, kind: Any, name: str) -> Any:
    """``value`` checked against (and converted to) the field type ``kind``; ConfigError naming ``name``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:
            return coerce(value, real[0], name)
        for a in real:
            try:
                return coerce(value, a, name)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: {value!r} is none of {', '.join(_type_name(a) for a in real)}")
    if kind is Any:
        return value
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        valid = [m.value for m in kind]
        raw = value.value if isinstance(value, enum.Enum) else value
        if raw not in valid:
            raise ConfigError(f"{name}: {raw!r} is not one of {', '.join(map(str, valid))}")
        return kind(raw)
    if origin is tuple and args == (int, int):
        return parse_hw(value, name)
    if origin is tuple and args == (float, ...):
        return parse_numbers(value, name)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        return Path(value)
    return value  # lists, dicts and other structured fields: taken as written


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def build_config(cls: type, *layers: tuple[str, Mapping[str, Any]]) -> Any:
    """An instance of ``cls`` from ``(source, values)`` layers, later layers winning; every key is checked
    against the fields (``source`` names the file or "flags" in errors) and every value against its type."""
    kinds = field_types(cls)
    merged: dict[str, Any] = {}
    for source, values in layers:
        check_keys(cls, values, source)
        for key, value in values.items():
            merged[key] = coerce(value, kinds[key], f"{source}: {key}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in merged and _required(f)]
    if missing:
        flags = ", ".join(f"--{m.replace('_', '-')}" for m in missing)
        raise ConfigError(f"missing {', '.join(missing)}: give {flags} or set it in the --config file")
    return cls(**merged)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def stored_config(run_dir: str | Path, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that a run folder's ``config.json`` stores (others, like ``world_size``, are the
    run's bookkeeping and are ignored); ``{}`` when the folder has none. A field the file lacks takes the
    value ``cls.STORED_DEFAULTS`` gives it, if any: what runs written before the field existed used."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(cls)}
    stored = {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}
    return {**getattr(cls, "STORED_DEFAULTS", {}), **stored} if stored else {}


def to_plain(cfg: Any) -> dict[str, Any]:
    """``asdict`` with Enum members as their values and sizes as lists: what config.json stores."""
    out = {}
    for k, v in dataclasses.asdict(cfg).items():
        out[k] = v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v
    return out
