"""What every topic's CLI shares: the one error helper, config files under flags, sizes, deprecated flags.

A verb parses, calls the library inside :func:`user_errors`, and prints. Errors a user can fix (a missing
file, a bad value, a run folder that exists) print ``error: <message>`` and exit 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from deepnotes.core.config import ConfigError, build_config, parse_hw, read_config_file, stored_config

# what a user can fix: bad values (ValueError covers UnicodeDecodeError and ConfigError), files and
# folders that are missing, exist already, or cannot be read or written (OSError)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


class UserError(ValueError):
    """An error meant for the user, raised by library code where no more specific type fits."""


def fail(problem: BaseException | str, code: int = 2) -> NoReturn:
    """Print ``error: ...`` on stderr and exit with ``code`` (2: the input or arguments were wrong)."""
    message = problem if isinstance(problem, str) else _message(problem)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _message(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason} at byte {exc.start}); is it a binary file?"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


@contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn the errors a user can fix (``USER_ERRORS`` and ``extra``) into ``error: ...`` and exit 2."""
    try:
        yield
    except (*USER_ERRORS, *extra) as exc:
        fail(exc)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def deprecated(old: str, new: str) -> None:
    """Say that flag ``old`` is deprecated in favour of ``new`` (old spellings work for one release)."""
    warn(f"{old} is deprecated and will be removed in the next release; use {new}")


def size_option(text: str | None, flag: str) -> tuple[int, int] | None:
    """Parse an ``H,W`` (or one number: square) flag value; a bad one is a usage error naming ``flag``."""
    if text is None:
        return None
    try:
        return parse_hw(text, flag)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{flag}: "), param_hint=flag) from None


def flags_given(ctx: typer.Context, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` (parameter name -> value) that the user typed on the command line (or set
    through the environment): flags left at their default do not override a config file."""
    given = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        # by name: typer may bring its own copy of click, whose ParameterSource is another Enum class
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given[name] = value.value if isinstance(value, enum.Enum) else value
    return given


def resume_folder(config_file: Path | None, out: Path | str | None, resume: bool) -> Path | None:
    """The run folder a ``--resume`` continues, whose stored config is the base layer: ``--out``, or the
    ``out`` key of the ``--config`` file; None when not resuming."""
    if not resume:
        return None
    if out is None and config_file is not None:
        with user_errors():
            out = read_config_file(config_file).get("out")
    return Path(out) if out is not None else None


def resolve_config(cls: type, ctx: typer.Context, config_file: Path | None, flags: Mapping[str, Any],
                   resume_from: Path | None = None, defaults: Mapping[str, Any] | None = None) -> Any:
    """The config a train verb runs with: ``cls``'s defaults < ``defaults`` (the verb's own) < the run
    folder's stored config (``resume_from``, with --resume) < ``--config FILE`` < the flags the user typed.

    ``flags`` maps each config field to its flag's parsed value; only those typed on the command line are
    applied. Errors (an unknown key, a wrong type, a missing required value) exit 2 naming the key."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if defaults:
        layers.append(("defaults", defaults))
    with user_errors():
        if resume_from is not None:
            layers.append((str(Path(resume_from) / "config.json"), stored_config(resume_from, cls)))
        if config_file is not None:
            layers.append((str(config_file), read_config_file(config_file)))
        layers.append(("command line", {k: v for k, v in flags_given(ctx, flags).items() if v is not None}))
        return build_config(cls, *layers)


CONFIG_OPTION_HELP = ("YAML file of config keys (the flag names with underscores); flags given on the "
                      "command line override it")


def positive(value: float | None) -> float | None:
    """A typer ``callback`` refusing zero and negative numbers at parse time (``min=`` is inclusive)."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be greater than 0, got {value}")
    return value
