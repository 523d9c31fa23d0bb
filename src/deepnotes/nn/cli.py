"""`deepnotes nn ...` verbs: list the layers, plot every activation with its derivative."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.core.cli import fail, user_errors
from deepnotes.nn.activations import ACTIVATIONS

app = typer.Typer(no_args_is_help=True, help="Activations, gated feed-forward blocks and upsamplers.")


@app.command("list")
def list_layers() -> None:
    """Print the names `get_activation`, `get_feed_forward` and `Upsample` accept."""
    from deepnotes.nn.glu import FEED_FORWARDS
    from deepnotes.nn.upsampling import KINDS

    typer.echo("activations:   " + ", ".join(ACTIVATIONS))
    typer.echo("feed-forwards: " + ", ".join(FEED_FORWARDS))
    typer.echo("upsamplers:    " + ", ".join(KINDS))


def _activation_names(text: str | None) -> list[str]:
    """``--names``: a comma-separated list of activations, checked at parse time (default: all)."""
    if not text:
        return list(ACTIVATIONS)
    chosen = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in ACTIVATIONS]
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown activation(s) {', '.join(unknown) or repr(text)}; "
                                 f"valid: {', '.join(ACTIVATIONS)}")
    return chosen


@app.command()
def plot(
    out: Path = typer.Option(..., "--out", help="folder for activations.png and activations.csv"),
    names: str = typer.Option(None, "--names", callback=_activation_names, show_default="all",
                              help=f"comma-separated activation names: {', '.join(ACTIVATIONS)}"),
    force: bool = typer.Option(False, "--force", help="overwrite existing files in --out"),
) -> None:
    """Draw every activation f(x) and its derivative f'(x) on [-5, 5]; also write the sampled values (CSV)."""
    import numpy as np

    from deepnotes.core.checkpoint import atomic_write_text
    from deepnotes.nn.plots import activation_curves, plot_activations

    chosen: list[str] = names  # type: ignore[assignment]  (the callback turned the text into a list)
    targets = [out / "activations.png", out / "activations.csv"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        fail(f"{', '.join(existing)} already exist; pass --force to overwrite")
    fig = plot_activations(chosen)
    curves = activation_curves(chosen, n=201)
    x = next(iter(curves.values()))[0]
    cols = [x] + [c for _, y, dy in curves.values() for c in (y, dy)]
    header = "x," + ",".join(f"{n},d_{n}" for n in curves)
    lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in np.stack(cols, axis=1)]
    with user_errors():  # an --out that cannot be created or written
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(targets[0], dpi=110, bbox_inches="tight")
        atomic_write_text(targets[1], "\n".join(lines) + "\n")
    typer.echo(f"wrote {targets[0]} and {targets[1]}")
