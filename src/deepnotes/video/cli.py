"""`deepnotes video ...` verbs (thin: parse, then call the library)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Action recognition: synth, train, eval, predict, flow, detect.")

# --- recognition verbs (synth, train, eval, predict) go here ---


# the two-stream / optical-flow / untrimmed verbs live in their own module and register on `app`
from deepnotes.video import cli_two_stream  # noqa: E402,F401
