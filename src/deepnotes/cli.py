"""`deepnotes <topic> <verb>`: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from deepnotes.core.claims import CLAIM_TOPICS
from deepnotes.core.cli import user_errors

app = typer.Typer(
    help="deepnotes: deep-learning study notes, implemented, tested and reproduced with measured numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# CLI group -> module defining `app` (a typer.Typer) with that topic's verbs
TOPIC_CLIS = {
    "nn": ("deepnotes.nn.cli", "activations and upsampling layers: list, plot"),
    "optim": ("deepnotes.optim.cli", "Adam/AdamW and stochastic approximation"),
    "calib": ("deepnotes.calib.cli",
              "multi-camera calibration: init, split, detect, intrinsics, stereo, rig, run"),
    "video": ("deepnotes.video.cli", "action recognition: synth, train, eval, predict, flow, detect"),
    "peft": ("deepnotes.peft.cli", "LoRA, adapters, prefix and prompt tuning: pretrain, train, generate"),
    "pose": ("deepnotes.pose.cli",
             "pose estimation with RLE, heatmap and regression heads: synth, train, eval, predict"),
}

for _name, (_module, _help) in TOPIC_CLIS.items():
    try:
        _sub = importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # a topic not built yet simply has no verbs
        if _exc.name != _module:
            raise
        continue
    app.add_typer(_sub.app, name=_name, help=_help)


@app.command()
def reproduce(
    quick: bool = typer.Option(True, "--quick/--full",
                               help="--quick: minutes on a laptop; --full: the real sizes."),
    only: str = typer.Option(None, "--only", help=f"comma-separated topics ({CLAIM_TOPICS.help()}) or claim "
                             "ids, e.g. optim,activations or video.cost_2d_vs_3d"),
    out: Path = typer.Option(Path("runs/report"), "--out",
                             help="folder for report.md, report.html, results.json"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda (or cuda:N), mps"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing report in --out"),
) -> None:
    """Run every registered claim and write the report. Each claim ends held, refuted or inconclusive (its 95%
    interval wholly on the claim's side of the bound, wholly on the other, or neither); exits 1 when a claim
    is refuted or errors, 0 otherwise (inconclusive never fails a run), 2 on bad arguments."""
    from deepnotes.core.device import pick_device
    from deepnotes.core.report import reproduce as run
    from deepnotes.core.report_render import result_line, summary_line

    topics = [t.strip() for t in only.split(",") if t.strip()] if only else None
    with user_errors():  # a mistyped topic or device, an existing report without --force: exit 2
        results = run(out, topics=topics, quick=quick, seed=seed, device=pick_device(device), force=force)
    for r in results:
        typer.echo(result_line(r))
    typer.echo(f"report: {out / 'report.html'}  ({out / 'report.md'}, {out / 'results.json'})")
    typer.echo(f"summary: {summary_line(results)}")
    bad = [r.claim.id for r in results if r.verdict in ("refuted", "error")]
    if bad:
        typer.echo(f"{len(bad)} claim(s) refuted or in error: {', '.join(bad)}", err=True)
        raise typer.Exit(1)


@app.command()
def topics() -> None:
    """List the claim topics that `reproduce --only` accepts."""
    for t, m in CLAIM_TOPICS.items():
        typer.echo(f"{t:20s} {m}")


def main() -> None:
    app(prog_name="deepnotes")


if __name__ == "__main__":
    sys.exit(main())
