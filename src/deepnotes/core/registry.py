"""One way to add a variant: a named registry that the CLI, the tests and the claims all read.

Video models, pose heads, PEFT methods and claim topics each live in a :class:`Registry`. An entry is a name,
the object (a builder, a class, a module path) and free attributes (``family="2d"``, ``lr=5e-3``)::

    MODELS = Registry("video model")

    @MODELS.register("tsm", family="2d")
    def build(cfg): ...

    MODELS["tsm"](cfg)              # the object
    MODELS.info("tsm")["family"]    # its attributes
    MODELS.names(family="2d")       # names in registration order, filtered by attributes
    MODELS.choices()                # a str Enum of the names: typer lists them in --help, refuses the rest

A registry is a read-only mapping ``name -> object``, so ``name in MODELS`` and ``list(MODELS)`` work.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, T]):
    """Named entries of one kind; ``kind`` names them in errors ("unknown video model 'x'; valid: ...")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._enum: type[enum.Enum] | None = None

    def register(self, name: str, obj: T | None = None, **info: Any) -> Any:
        """Add ``obj`` under ``name`` (returns it); without ``obj``, a decorator: ``@REG.register("x")``."""
        if obj is None:

            def decorate(o: T) -> T:
                self.register(name, o, **info)
                return o

            return decorate
        old = self._entries.get(name)
        # re-importing a module (importlib.reload, a test) registers the same function again: keep it quiet;
        # the module counts too (every video model file names its builder `build`)
        if old is not None and _origin(old.obj) != _origin(obj):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, obj, dict(info))
        self._enum = None
        return obj

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {', '.join(self._entries)}")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self.entry(name).obj

    def info(self, name: str) -> dict[str, Any]:
        return self.entry(name).info

    def names(self, **where: Any) -> list[str]:
        """Names in registration order whose attributes equal every ``where`` item."""
        return [e.name for e in self._entries.values() if all(e.info.get(k) == v for k, v in where.items())]

    def choices(self) -> type[enum.Enum]:
        """A ``str`` Enum of the names (rebuilt when an entry is added), for typer options."""
        if self._enum is None:
            label = "".join(w.capitalize() for w in self.kind.split()) + "Choice"
            self._enum = enum.Enum(label, {n: n for n in self._entries}, type=str)  # type: ignore[misc]
        return self._enum

    def help(self, **where: Any) -> str:
        return ", ".join(self.names(**where))

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def _origin(obj: Any) -> tuple[Any, Any]:
    """What identifies a registered object across re-imports: (module, qualified name), or the object."""
    return getattr(obj, "__module__", None), getattr(obj, "__qualname__", obj)


def choice_value(value: Any) -> Any:
    """The plain value of an Enum member (what typer hands a command for a choice), else ``value``."""
    return value.value if isinstance(value, enum.Enum) else value


def str_enum(name: str, values: list[str] | tuple[str, ...]) -> type[enum.Enum]:
    """A ``str`` Enum over fixed ``values`` (choices that no registry holds, e.g. ``--crop``)."""
    return enum.Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]

