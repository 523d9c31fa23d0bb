"""Run registered claims and write ``report.md``, ``report.html`` (plots embedded) and ``results.json``."""

from __future__ import annotations

import base64
import html
import json
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepnotes.core.checkpoint import atomic_write_json, atomic_write_text
from deepnotes.core.claims import Claim, ClaimContext, Outcome, registered_claims
from deepnotes.core.progress import progress
from deepnotes.core.seed import seed_everything

REPORT_FILES = ("report.md", "report.html", "results.json")


@dataclass
class ClaimResult:
    claim: Claim
    figures: dict[str, float]
    condition: str
    held: bool
    error: str | None
    seconds: float
    plots: list[Path]
    tables: dict[str, list[dict[str, Any]]]
    notes: str

    def as_json(self, out_dir: Path) -> dict[str, Any]:
        return {
            "id": self.claim.id,
            "topic": self.claim.topic,
            "statement": self.claim.statement,
            "figures": self.figures,
            "condition": self.condition,
            "held": self.held,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "plots": [str(p.relative_to(out_dir)) for p in self.plots],
            "tables": _json_safe(self.tables),
            "notes": self.notes,
        }


def run_claim(c: Claim, quick: bool, seed: int, device: torch.device, out_dir: Path) -> ClaimResult:
    """Run one claim; an exception becomes an error entry, never a crash of the whole report."""
    ctx = ClaimContext(quick=quick, seed=seed, device=device, out_dir=out_dir, claim_id=c.id)
    seed_everything(seed)
    start = time.perf_counter()
    try:
        outcome = c.fn(ctx)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"claim {c.id} returned {type(outcome).__name__}, not Outcome")
        figures = {k: _number(v) for k, v in outcome.figures.items()}
        return ClaimResult(c, figures, outcome.condition or c.condition, bool(outcome.held), None,
                           time.perf_counter() - start, ctx.plots, outcome.tables, outcome.notes)
    except Exception as exc:  # a failing claim is reported, the run goes on
        tb = traceback.format_exc(limit=6)
        return ClaimResult(c, {}, c.condition, False, f"{type(exc).__name__}: {exc}\n{tb}",
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
              "torch": torch.__version__, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(out_dir / "results.json", {**header, "claims": [r.as_json(out_dir) for r in results]})
    atomic_write_text(out_dir / "report.md", _markdown(results, out_dir, header))
    atomic_write_text(out_dir / "report.html", _html(results, out_dir, header))


def _verdict(r: ClaimResult) -> str:
    return "error" if r.error else ("held" if r.held else "did not hold")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _summary(results: list[ClaimResult]) -> tuple[int, int, int]:
    held = sum(r.held and not r.error for r in results)
    errors = sum(bool(r.error) for r in results)
    return held, len(results) - held - errors, errors


def _overview(results: list[ClaimResult]) -> list[dict[str, Any]]:
    return [{"claim": r.claim.id, "verdict": _verdict(r), "seconds": round(r.seconds, 1)} for r in results]


def _markdown(results: list[ClaimResult], out_dir: Path, header: dict[str, Any]) -> str:
    held, failed, errors = _summary(results)
    parts = [
        "# deepnotes reproduction report\n",
        f"Mode `{header['mode']}`, seed {header['seed']}, device `{header['device']}`, "
        f"torch {header['torch']}, written {header['written']}.\n",
        f"**{held} held, {failed} did not hold, {errors} errors** out of {len(results)} claims.\n",
        _md_table(_overview(results)),
    ]
    for topic in dict.fromkeys(r.claim.topic for r in results):
        parts.append(f"\n## {topic}\n")
        for r in (r for r in results if r.claim.topic == topic):
            parts.append(f"\n### {r.claim.id}: {_verdict(r)}\n\n{r.claim.statement}\n\n"
                         f"*Condition:* {r.condition}\n")
            if r.figures:
                parts.append("\n" + _md_table([{"figure": k, "value": v} for k, v in r.figures.items()]))
            for name, rows in r.tables.items():
                parts.append(f"\n**{name}**\n\n" + _md_table(rows))
            if r.notes:
                parts.append(f"\n{r.notes}\n")
            for p in r.plots:
                parts.append(f"\n![{p.stem}]({p.relative_to(out_dir)})\n")
            if r.error:
                parts.append(f"\n```\n{r.error}\n```\n")
    return "".join(parts)


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in cols) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.held{color:#17702b}.did{color:#a33}.error{color:#a33;font-weight:bold}img{max-width:100%;margin:.5em 0}
pre{background:#f6f6f6;padding:.6em;overflow:auto}section{border-top:1px solid #ddd;margin-top:1.5em}"""


def _html(results: list[ClaimResult], out_dir: Path, header: dict[str, Any]) -> str:
    held, failed, errors = _summary(results)
    css_class = {"held": "held", "did not hold": "did", "error": "error"}
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>deepnotes report</title>"
        f"<style>{_CSS}</style></head><body><h1>deepnotes reproduction report</h1>",
        f"<p>Mode <code>{header['mode']}</code>, seed {header['seed']}, "
        f"device <code>{html.escape(header['device'])}</code>, torch {header['torch']}, "
        f"written {header['written']}.</p>",
        f"<p><b>{held} held, {failed} did not hold, {errors} errors</b> out of {len(results)} claims.</p>",
        _html_table(_overview(results)),
    ]
    for topic in dict.fromkeys(r.claim.topic for r in results):
        out.append(f"<h2>{html.escape(topic)}</h2>")
        for r in (r for r in results if r.claim.topic == topic):
            v = _verdict(r)
            out.append(f"<section><h3>{html.escape(r.claim.id)}: "
                       f"<span class='{css_class[v]}'>{v}</span></h3>")
            out.append(f"<p>{html.escape(r.claim.statement)}</p>"
                       f"<p><i>Condition:</i> {html.escape(r.condition)}</p>")
            if r.figures:
                out.append(_html_table([{"figure": k, "value": val} for k, val in r.figures.items()]))
            for name, rows in r.tables.items():
                out.append(f"<p><b>{html.escape(name)}</b></p>" + _html_table(rows))
            if r.notes:
                out.append(f"<p>{html.escape(r.notes)}</p>")
            for p in r.plots:
                data = base64.b64encode(p.read_bytes()).decode("ascii")
                out.append(f"<img alt='{html.escape(p.stem)}' src='data:image/png;base64,{data}'>")
            if r.error:
                out.append(f"<pre>{html.escape(r.error)}</pre>")
            out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def load_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
