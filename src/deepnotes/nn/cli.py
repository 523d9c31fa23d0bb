"""`deepnotes nn ...` verbs: list the layers, plot every activation with its derivative."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Activations, gated feed-forward blocks and upsamplers.")


@app.command("list")
def list_layers() -> None:
    """Print the names `get_activation`, `get_feed_forward` and `Upsample` accept."""
    from deepnotes.nn.activations import ACTIVATIONS
    from deepnotes.nn.glu import FEED_FORWARDS
    from deepnotes.nn.upsampling import KINDS

    typer.echo("activations:   " + ", ".join(ACTIVATIONS))
    typer.echo("feed-forwards: " + ", ".join(FEED_FORWARDS))
    typer.echo("upsamplers:    " + ", ".join(KINDS))


@app.command()
def plot(
    out: Path = typer.Option(..., "--out", help="folder for activations.png and activations.csv"),
    names: str = typer.Option(None, "--names", help="comma-separated activation names (default: all)"),
    force: bool = typer.Option(False, "--force", help="overwrite existing files in --out"),
) -> None:
    """Draw every activation f(x) and its derivative f'(x) on [-5, 5]; also write the sampled values as CSV."""
    import numpy as np

    from deepnotes.core.checkpoint import atomic_write_text
    from deepnotes.nn.activations import ACTIVATIONS
    from deepnotes.nn.plots import activation_curves, plot_activations

    chosen = [n.strip().lower() for n in names.split(",") if n.strip()] if names else list(ACTIVATIONS)
    unknown = [n for n in chosen if n not in ACTIVATIONS]
    if unknown:
        typer.echo(f"error: --names: unknown activation(s) {', '.join(unknown)}; valid: {', '.join(ACTIVATIONS)}",
                   err=True)
        raise typer.Exit(2)
    targets = [out / "activations.png", out / "activations.csv"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        typer.echo(f"error: {', '.join(existing)} already exist; pass --force to overwrite", err=True)
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_activations(chosen)
    fig.savefig(targets[0], dpi=110, bbox_inches="tight")
    curves = activation_curves(chosen, n=201)
    x = next(iter(curves.values()))[0]
    cols = [x] + [c for _, y, dy in curves.values() for c in (y, dy)]
    header = "x," + ",".join(f"{n},d_{n}" for n in curves)
    lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in np.stack(cols, axis=1)]
    atomic_write_text(targets[1], "\n".join(lines) + "\n")
    typer.echo(f"wrote {targets[0]} and {targets[1]}")
