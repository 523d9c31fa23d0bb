"""Run registered claims and write ``report.md``, ``report.html`` (plots embedded) and ``results.json``."""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepnotes.core.checkpoint import atomic_write_json, atomic_write_text
from deepnotes.core.claims import Claim, ClaimContext, Outcome, registered_claims
from deepnotes.core.progress import progress
from deepnotes.core.report_render import counts, html_report, markdown
from deepnotes.core.seed import seed_everything
from deepnotes.core.verdict import Evidence, combine, evidence

REPORT_FILES = ("report.md", "report.html", "results.json")


@dataclass
class ClaimResult:
    claim: Claim
    figures: dict[str, float]
    condition: str
    verdict: str
    error: str | None
    seconds: float
    plots: list[Path]
    tables: dict[str, list[dict[str, Any]]]
    notes: str
    evidence: list[Evidence] = field(default_factory=list)
    main: Evidence | None = None  # the test that decided the verdict

    @property
    def held(self) -> bool:
        return self.verdict == "held"

    def as_json(self, out_dir: Path) -> dict[str, Any]:
        c, m = self.claim, self.main
        return {
            "id": c.id,
            "topic": c.topic,
            "statement": c.statement,
            "figures": self.figures,
            "condition": self.condition,
            "held": self.held,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "plots": [str(p.relative_to(out_dir)) for p in self.plots],
            "tables": _json_safe(self.tables),
            "notes": self.notes,
            "verdict": self.verdict,
            "reason": m.reason if m else (self.error or "").split("\n")[0],
            "quantity": m.test.quantity if m else None,
            "side": m.test.side if m else None,
            "estimate": _number(m.estimate) if m else None,
            "interval": None if m is None or m.interval is None else [_number(v) for v in m.interval],
            "bound": m.test.bound if m else None,
            "n": m.n if m else 0,
            "method": m.test.method if m else None,
            "tests": [e.as_json() for e in self.evidence],
            "origin": c.origin,
            "source": c.source.as_json() if c.source else None,
            "paper": c.paper.as_json() if c.paper else None,
        }


def judge(c: Claim, outcome: Outcome) -> tuple[str, list[Evidence], Evidence]:
    """The claim's verdict from the outcome's samples: every declared test gets its evidence (a test the
    claim did not measure is an error in the claim)."""
    samples = outcome.samples
    if not isinstance(samples, dict):
        if len(c.tests) != 1:
            raise ValueError(f"claim {c.id} has {len(c.tests)} tests: samples must name them")
        samples = {c.tests[0].name: samples}
    floors = outcome.floor if isinstance(outcome.floor, dict) else {t.name: outcome.floor for t in c.tests}
    missing = [t.name for t in c.tests if t.name not in samples]
    unknown = [k for k in samples if k not in {t.name for t in c.tests}]
    if missing or unknown:
        raise ValueError(f"claim {c.id}: samples for tests {missing} missing, {unknown} not declared")
    parts = [evidence(t, samples[t.name], floors.get(t.name, "")) for t in c.tests]
    verdict, main = combine(parts)
    return verdict, parts, main


def run_claim(c: Claim, quick: bool, seed: int, device: torch.device, out_dir: Path) -> ClaimResult:
    """Run one claim; an exception becomes an error entry, never a crash of the whole report."""
    ctx = ClaimContext(quick=quick, seed=seed, device=device, out_dir=out_dir, claim_id=c.id, tests=c.tests)
    seed_everything(seed)
    start = time.perf_counter()
    try:
        outcome = c.fn(ctx)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"claim {c.id} returned {type(outcome).__name__}, not Outcome")
        verdict, parts, main = judge(c, outcome)
        figures = {k: _number(v) for k, v in outcome.figures.items()}
        return ClaimResult(c, figures, outcome.condition or c.condition, verdict, None,
                           time.perf_counter() - start, ctx.plots, outcome.tables, outcome.notes, parts, main)
    except Exception as exc:  # a failing claim is reported, the run goes on
        tb = traceback.format_exc(limit=6)
        return ClaimResult(c, {}, c.condition, "error", f"{type(exc).__name__}: {exc}\n{tb}",
                           time.perf_counter() - start, ctx.plots, {}, "")


def _number(v: Any) -> float | int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    v = float(v)
    return v if math.isfinite(v) else None  # NaN and +-inf are not valid JSON (json.dumps would write NaN)


def _json_safe(obj: Any) -> Any:
    """Table cells with NaN / inf become null (the Markdown and HTML tables still show the value)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def reproduce(
    out_dir: str | Path,
    topics: list[str] | None = None,
    quick: bool = True,
    seed: int = 0,
    device: torch.device | None = None,
    force: bool = False,
) -> list[ClaimResult]:
    """Run every claim of ``topics`` and write the three report files under ``out_dir``."""
    out_dir = Path(out_dir)
    existing = [f for f in REPORT_FILES if (out_dir / f).exists()]
    if existing and not force:
        raise FileExistsError(f"{out_dir} already holds {', '.join(existing)}; pass --force to overwrite it")
    claims = registered_claims(topics)  # before creating anything: a mistyped topic leaves no folder behind
    if not claims:
        raise ValueError(f"no claims registered for topics {topics or 'all'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device or torch.device("cpu")
    results = []
    bar = progress(claims, desc="claims", total=len(claims), leave=True)
    for c in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(c.id)
        results.append(run_claim(c, quick, seed, device, out_dir))
    write_report(results, out_dir, quick=quick, seed=seed, device=device)
    return results


def write_report(results: list[ClaimResult], out_dir: Path, quick: bool, seed: int,
                 device: torch.device) -> None:
    header = {"mode": "quick" if quick else "full", "seed": seed, "device": str(device),
              "torch": torch.__version__, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
              "counts": counts(results)}
    atomic_write_json(out_dir / "results.json", {**header, "claims": [r.as_json(out_dir) for r in results]})
    atomic_write_text(out_dir / "report.md", markdown(results, out_dir, header))
    atomic_write_text(out_dir / "report.html", html_report(results, out_dir, header))


def load_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
