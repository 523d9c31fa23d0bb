"""`deepnotes optim ...`: stochastic-approximation demo, streaming mean of a file, digits lr x decay grid."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from deepnotes.core.cli import fail, user_errors

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
DEMO_SCHEDULES = ("1/k", "1/k^0.7", "const:0.1")


@app.command("sa-demo")
def sa_demo(
    schedule: list[str] = typer.Option(None, "--schedule",
                                       show_default="1/k, 1/k^0.7 and const:0.1 as the contrast",
                                       help="repeatable: '1/k', 'c/k^a' (e.g. 0.5/k^0.7) or 'const:c'"),
    steps: int = typer.Option(10_000, "--steps", min=1),
    replicates: int = typer.Option(200, "--replicates", min=1),
    noise: float = typer.Option(1.0, "--noise", min=0.0, help="std of the observation noise"),
    allow_nonconvergent: bool = typer.Option(False, "--allow-nonconvergent",
                                             help="run schedules that break the Robbins-Monro conditions"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("sa_demo.png"), "--out", help="PNG to write"),
) -> None:
    """Robbins-Monro on g(t) = t - 2 seen through Gaussian noise: RMS error against k for each schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from deepnotes.core import seeded_generator
    from deepnotes.optim.stochastic import robbins_monro

    schedules = _demo_schedules(schedule, allow_nonconvergent)
    rng = seeded_generator(seed)
    record = np.unique(np.logspace(0, np.log10(steps), 60).astype(int))
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for sched in schedules:
        try:
            trace = robbins_monro(lambda t, k: t - 2.0 + noise * rng.standard_normal(t.shape),
                                  np.zeros(replicates), sched, steps, require_convergence=False,
                                  record=record)  # conditions checked above
        except ValueError as exc:
            fail(f"--schedule {sched}: {exc}")
        err = np.sqrt(((trace.thetas - 2.0) ** 2).mean(axis=1))
        ax.loglog(trace.ks, err, label=str(sched))
        typer.echo(f"{str(sched):>16s}: RMS error after {steps} steps {err[-1]:.4g}")
    ax.set_xlabel("step k")
    ax.set_ylabel("RMS error")
    ax.legend()
    with user_errors():
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    typer.echo(f"plot: {out}")


def _demo_schedules(texts: list[str] | None, allow_nonconvergent: bool) -> list:
    """The --schedule values parsed and checked before any work; without any, the defaults, whose constant
    step is the non-convergent contrast the demo exists for."""
    from deepnotes.optim.schedule_sa import check_robbins_monro, parse_schedule

    try:
        schedules = [parse_schedule(s) for s in (texts or DEMO_SCHEDULES)]
    except ValueError as exc:
        fail(f"--schedule: {exc}")
    for sched in schedules:
        try:
            check_robbins_monro(sched)
        except ValueError as exc:
            if not texts:
                typer.echo(f"{sched}: shown as the contrast ({exc})")
            elif not allow_nonconvergent:
                fail(f"--schedule {sched}: {exc}")
    return schedules


def _mean_of_lines(path: Path, acc) -> list[int]:
    """Feed every finite number of ``path`` (one per line; blank and ``#`` lines ignored) into ``acc``;
    returns the numbers of the lines that hold something else. A file that is not UTF-8 text (a binary
    file) is a ValueError naming it."""
    import numpy as np

    bad: list[int] = []
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    value = float(text)
                except ValueError:
                    bad.append(lineno)
                    continue
                if not np.isfinite(value):
                    bad.append(lineno)
                    continue
                acc.update(value)
    except UnicodeDecodeError as exc:
        # (text is decoded in blocks: the error's byte offset is within a block, not the file, so not shown)
        raise ValueError(f"{path} is not a text file ({exc.reason} in UTF-8: a binary file?); expected one "
                         "number per line") from None
    return bad


@app.command("mean")
def mean(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="text file, one number per line"),
         compensated: bool = typer.Option(True, "--compensated/--plain", help="Kahan-compensated increments"),
         float32: bool = typer.Option(False, "--float32",
                                      help="accumulate in float32 instead of float64")) -> None:
    """Mean of a stream of numbers in O(1) memory. Bad lines are skipped, counted and reported."""
    import numpy as np

    from deepnotes.optim.stochastic import IncrementalMean

    acc = IncrementalMean(np.float32 if float32 else np.float64, compensated=compensated)
    with user_errors():
        bad = _mean_of_lines(path, acc)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        typer.echo(f"warning: skipped {len(bad)} line(s) of {path} that are not finite numbers: {shown}",
                   err=True)
    if acc.count == 0:
        fail(f"{path} holds no numbers (one per line expected)")
    summary = {"file": str(path), "count": acc.count, "mean": float(acc.mean), "skipped": len(bad)}
    typer.echo(json.dumps(summary))


def _positive_floats(text: str) -> list[float]:
    """A comma-separated list of numbers > 0 (at least one), checked at parse time."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise typer.BadParameter(f"need at least one value, all > 0, got {text!r}")
    return values


@app.command("grid")
def grid(
    lrs: str = typer.Option("3e-4,1e-3,3e-3,1e-2", "--lrs", callback=_positive_floats,
                            help="comma-separated learning rates"),
    adam_decays: str = typer.Option("1e-5,1e-4,1e-3,1e-2", "--adam-decays", callback=_positive_floats,
                                    help="L2 coefficients for Adam"),
    adamw_decays: str = typer.Option("3e-5,3e-4,3e-3,3e-2", "--adamw-decays", callback=_positive_floats,
                                     help="AdamW decay per schedule unit (weight_decay = value / lr)"),
    epochs: int = typer.Option(10, "--epochs", min=1),
    seeds: int = typer.Option(1, "--seeds", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda (or cuda:N), mps"),
    out: Path = typer.Option(Path("runs/optim_grid"), "--out", help="folder for grid.json and grid.png"),
) -> None:
    """Digits + small CNN: validation accuracy over lr x decay for Adam+L2 and AdamW (JSON and heat-maps)."""
    import numpy as np

    from deepnotes.core import atomic_write_json, pick_device
    from deepnotes.optim.digits_grid import optimum_coupling, plot_grid, sweep

    # the callbacks turned each list into floats
    lr_values = np.array(lrs)
    decays = {"Adam": np.array(adam_decays), "AdamW": np.array(adamw_decays)}
    with user_errors():
        dev = pick_device(device)
    result = sweep(lr_values, decays, epochs=epochs, seeds=list(range(seeds)), device=dev)
    summary = {"lrs": lr_values.tolist(), "epochs": epochs, "seeds": seeds}
    for name in decays:
        slope, best = optimum_coupling(result, name)
        summary[name] = {"decays": decays[name].tolist(), "val_acc": result.acc[name].tolist(),
                         "best_val_acc": float(result.acc[name].max()), "best_decay_per_lr": best.tolist(),
                         "coupling_slope": slope}
        typer.echo(f"{name:6s} best val acc {result.acc[name].max():.4f}, best-decay slope vs lr {slope:.2f}")
    with user_errors():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "grid.json", summary)
        plot_grid(result).savefig(out / "grid.png", dpi=110, bbox_inches="tight")
    typer.echo(f"wrote {out / 'grid.json'} and {out / 'grid.png'}")
