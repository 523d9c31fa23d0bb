"""The report's two readable forms: ``report.md`` and the self-contained ``report.html``.

Both open with the notes: each note (by its title) with its claims, their origin, verdict, estimate,
interval, bound and n, every row a link to the claim's section. A claim's section shows the note's sentence
and its translation, the paper's figure beside ours, the verdict with its reason, and for every test a plot of
the estimate and its 95% interval against the bound (inline SVG in the HTML).

The results are duck-typed (:class:`deepnotes.core.report.ClaimResult`): this module only reads them.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from deepnotes.core.notes import NOTES
from deepnotes.core.verdict import VERDICTS, Evidence

ORIGIN_WORDS = {"note": "the note says it", "paper": "a paper says it", "library": "our own thesis"}


def counts(results: list[Any]) -> dict[str, int]:
    """How many claims reached each verdict (held, refuted, inconclusive, error)."""
    return {v: sum(r.verdict == v for r in results) for v in VERDICTS}


def summary_line(results: list[Any]) -> str:
    n = counts(results)
    return (f"{n['held']} held, {n['refuted']} refuted, {n['inconclusive']} inconclusive, "
            f"{n['error']} errors out of {len(results)} claims")


def result_line(r: Any) -> str:
    """One claim on the console: verdict, id, estimate, interval, bound, n and seconds."""
    m = r.main
    verdict = r.verdict.upper() if r.verdict in ("refuted", "error") else r.verdict
    what = ""
    if m is not None and m.estimate is not None:
        what = f"  {m.estimate:.4g} {interval_text(m)} vs {m.test.side} {m.test.bound:g}, n={m.n}"
    elif m is not None:
        what = f"  ({m.reason})"
    return f"{verdict:>12}  {r.claim.id}{what}  ({r.seconds:.1f}s)"


def by_note(results: list[Any]) -> list[tuple[str, list[Any]]]:
    """(note title, its results) in the notes' order; claims without a source last under "other"."""
    groups: dict[str, list[Any]] = {}
    for key in NOTES:
        rows = [r for r in results if r.claim.source and r.claim.source.note_key == key]
        if rows:
            groups[NOTES[key].title] = rows
    other = [r for r in results if not r.claim.source]
    if other:
        groups["other"] = other
    return list(groups.items())


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return "n/a" if v is None else str(v)


def interval_text(e: Evidence | None) -> str:
    if e is None or e.interval is None:
        return "exact" if e is not None and e.test.exact else "none"
    return f"[{fmt(e.interval[0])}, {fmt(e.interval[1])}]"


def anchor(claim_id: str) -> str:
    return "claim-" + "".join(ch if ch.isalnum() else "-" for ch in claim_id)


def overview_rows(rows: list[Any]) -> list[dict[str, Any]]:
    """The per-note table: claim, origin, verdict, estimate, interval, bound, n, seconds."""
    out = []
    for r in rows:
        m = r.main
        out.append({"claim": r.claim.id, "origin": r.claim.origin, "verdict": r.verdict,
                    "estimate": m.estimate if m else None, "interval": interval_text(m),
                    "bound": f"{m.test.side} {m.test.bound:g}" if m else None, "n": m.n if m else 0,
                    "why": _short(m.reason if m else (r.error or "").split("\n")[0]),
                    "seconds": round(r.seconds, 1)})
    return out


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------- Markdown


def md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(row.get(c)).replace("|", "/") for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(results: list[Any], out_dir: Path, header: dict[str, Any]) -> str:
    parts = ["# deepnotes reproduction report\n\n",
             f"Mode `{header['mode']}`, seed {header['seed']}, device `{header['device']}`, "
             f"torch {header['torch']}, written {header['written']}.\n\n",
             f"**{summary_line(results)}.** Held / refuted: the 95% interval lies wholly on the claim's / "
             "the other side of the bound; inconclusive: it does not (or the metric sits at its floor).\n"]
    for title, rows in by_note(results):
        parts.append(f"\n## {title}\n\n")
        table = overview_rows(rows)
        for row in table:
            row["claim"] = f"[{row['claim']}](#{anchor(row['claim'])})"
        parts.append(md_table(table))
    for title, rows in by_note(results):
        parts.append(f"\n## {title}: claims\n")
        parts.extend(_md_claim(r, out_dir) for r in rows)
    return "".join(parts)


def _md_claim(r: Any, out_dir: Path) -> str:
    c, parts = r.claim, []
    parts.append(f"\n<a id=\"{anchor(c.id)}\"></a>\n### {c.id}: {r.verdict}\n\n{c.statement}\n\n"
                 f"*Origin:* {c.origin} ({ORIGIN_WORDS.get(c.origin, '')}).\n")
    if c.source:
        quote = f"> {c.source.note}\n>\n> — {c.source.translation}\n" if c.source.note else (
            f"*Not in the note's excerpt:* {c.source.translation}\n")
        parts.append(f"\n{quote}")
    if c.paper:
        parts.append(f"\n*Paper:* {c.paper.ref}. {c.paper.figure} ({c.paper.setting}).\n")
    parts.append(f"\n*Condition:* {r.condition}\n")
    if r.evidence:
        parts.append("\n" + md_table([_test_row(e) for e in r.evidence]))
    if r.main is not None and r.main.reason:
        parts.append(f"\n*Why {r.verdict}:* {r.main.reason}\n")
    if r.figures:
        parts.append("\n" + md_table([{"figure": k, "value": v} for k, v in r.figures.items()]))
    for name, rows in r.tables.items():
        parts.append(f"\n**{name}**\n\n" + md_table(rows))
    if r.notes:
        parts.append(f"\n{r.notes}\n")
    for p in r.plots:
        parts.append(f"\n![{p.stem}]({p.relative_to(out_dir)})\n")
    if r.error:
        parts.append(f"\n```\n{r.error}\n```\n")
    return "".join(parts)


def _test_row(e: Evidence) -> dict[str, Any]:
    t = e.test
    return {"test": t.name, "quantity": t.quantity, "estimate": e.estimate, "95% interval": interval_text(e),
            "bound": f"{t.side} {t.bound:g}", "n": e.n, "method": t.method + ("" if t.decides else " (info)"),
            "verdict": e.verdict}


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.held{color:#17702b;font-weight:bold}.refuted{color:#a33;font-weight:bold}.inconclusive{color:#8a6d00}
.error{color:#a33;font-weight:bold}img{max-width:100%;margin:.5em 0}blockquote{border-left:3px solid #bbb;
margin:.5em 0;padding:.2em .8em;background:#fafafa}.zh{font-size:1.05em}.origin{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:.6em;overflow:auto}section{border-top:1px solid #ddd;margin-top:1.5em}
.side{display:flex;gap:1.5em;flex-wrap:wrap}.side>div{flex:1;min-width:300px}"""


def html_table(rows: list[dict[str, Any]], raw: tuple[str, ...] = ()) -> str:
    """A table; cells of the columns in ``raw`` are HTML already (links, verdict spans)."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(
        f"<td>{row.get(c) if c in raw else html.escape(fmt(row.get(c)))}</td>" for c in cols) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict_html(v: str) -> str:
    return f"<span class='{v}'>{v}</span>"


def html_report(results: list[Any], out_dir: Path, header: dict[str, Any]) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>deepnotes report</title>"
           f"<style>{_CSS}</style></head><body><h1>deepnotes reproduction report</h1>",
           f"<p>Mode <code>{header['mode']}</code>, seed {header['seed']}, device "
           f"<code>{html.escape(header['device'])}</code>, torch {header['torch']}, written "
           f"{header['written']}.</p><p><b>{summary_line(results)}</b>. <i>held</i> / <i>refuted</i>: the "
           "95% interval lies wholly on the claim's / the other side of the bound; <i>inconclusive</i>: it "
           "does not, there is a single noisy measurement, or every arm sits at the metric's floor.</p>",
           "<h2>The notes and their claims</h2>"]
    for title, rows in by_note(results):
        table = overview_rows(rows)
        for row in table:
            row["claim"] = f"<a href='#{anchor(row['claim'])}'>{html.escape(row['claim'])}</a>"
            row["verdict"] = _verdict_html(row["verdict"])
        out.append(f"<h3>{html.escape(title)}</h3>" + html_table(table, raw=("claim", "verdict")))
    for title, rows in by_note(results):
        out.append(f"<h2>{html.escape(title)}</h2>")
        out.extend(_html_claim(r) for r in rows)
    out.append("</body></html>")
    return "\n".join(out)


def _html_source(c: Any) -> str:
    s, p = c.source, c.paper
    note = "<p>(no note)</p>"
    if s is not None:
        note = (f"<blockquote><span class='zh' lang='zh'>{html.escape(s.note)}</span><br><i>"
                f"{html.escape(s.translation)}</i></blockquote>" if s.note else
                f"<p><i>Not in the note's excerpt:</i> {html.escape(s.translation)}</p>")
    paper = "" if p is None else (f"<div><b>The paper</b><p>{html.escape(p.ref)}</p><p>"
                                  f"{html.escape(p.figure)}</p><p class='origin'>setting: "
                                  f"{html.escape(p.setting)}</p></div>")
    return f"<div class='side'><div><b>The note</b>{note}</div>{paper}"


def _html_claim(r: Any) -> str:
    c, m = r.claim, r.main
    out = [f"<section id='{anchor(c.id)}'><h3>{html.escape(c.id)}: {_verdict_html(r.verdict)}</h3>",
           f"<p>{html.escape(c.statement)}</p><p class='origin'>origin: <b>{c.origin}</b> "
           f"({ORIGIN_WORDS.get(c.origin, '')})</p>", _html_source(c)]
    ours = "<p>error</p>" if m is None else (
        f"<p>{html.escape(m.test.quantity)}: <b>{fmt(m.estimate)}</b>, 95% interval "
        f"{interval_text(m)}, bound {html.escape(m.test.side)} {m.test.bound:g}, n = {m.n} "
        f"({m.test.method})</p>" + (f"<p><i>why {r.verdict}:</i> {html.escape(m.reason)}</p>" if m.reason
                                    else ""))
    out.append(f"<div><b>Ours</b>{ours}</div></div>")
    out.append(f"<p><i>Condition:</i> {html.escape(r.condition)}</p>")
    if r.evidence:
        out.append("".join(interval_svg(e) for e in r.evidence))
        out.append(html_table([_test_row(e) for e in r.evidence]))
    if r.figures:
        out.append(html_table([{"figure": k, "value": val} for k, val in r.figures.items()]))
    for name, rows in r.tables.items():
        out.append(f"<p><b>{html.escape(name)}</b></p>" + html_table(rows))
    if r.notes:
        out.append(f"<p>{html.escape(r.notes)}</p>")
    for p in r.plots:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(f"<img alt='{html.escape(p.stem)}' src='data:image/png;base64,{data}'>")
    if r.error:
        out.append(f"<pre>{html.escape(r.error)}</pre>")
    out.append("</section>")
    return "\n".join(out)


def interval_svg(e: Evidence, width: int = 640, height: int = 54) -> str:
    """One test as a picture: the claim's side of the bound shaded, the bound dashed, the 95% interval as a
    bar, the estimate as a dot, each measurement as a grey tick (log axis for ratios)."""
    t = e.test
    log = t.scale == "log"
    pts = [v for v in [t.bound, e.estimate, *(e.interval or ()), *e.samples]
           if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not pts:
        return ""
    tr = (lambda v: math.log10(v)) if log else (lambda v: v)
    lo, hi = min(map(tr, pts)), max(map(tr, pts))
    pad = (hi - lo) * 0.12 or (abs(hi) * 0.1 or 1.0)
    lo, hi = lo - pad, hi + pad
    left, right = 150, width - 90

    def x(v: float) -> float:
        return left + (tr(v) - lo) / (hi - lo) * (right - left)

    b = x(t.bound)
    shade = (b, right - b) if t.side == ">" else (left, b - left)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='{html.escape(t.name)}'>",
             f"<rect x='{shade[0]:.1f}' y='8' width='{max(shade[1], 0):.1f}' height='30' fill='#e3f3e6'/>",
             f"<line x1='{left}' y1='38' x2='{right}' y2='38' stroke='#999'/>",
             f"<line x1='{b:.1f}' y1='4' x2='{b:.1f}' y2='42' stroke='#444' stroke-dasharray='4 3'/>",
             f"<text x='{b:.1f}' y='52' font-size='10' text-anchor='middle'>bound {t.bound:g}</text>",
             *(f"<text x='{px}' y='52' font-size='9' fill='#777' text-anchor='{anchor_}'>"
               f"{(10 ** v if log else v):.3g}</text>" for px, v, anchor_ in ((left, lo, "start"),
                                                                               (right, hi, "end"))),
             f"<text x='4' y='27' font-size='11'>{html.escape(t.name[:22])}</text>"]
    parts += [f"<line x1='{x(v):.1f}' y1='30' x2='{x(v):.1f}' y2='36' stroke='#888'/>"
              for v in e.samples if math.isfinite(v) and (v > 0 or not log)]
    if e.interval is not None:
        a, z = x(e.interval[0]), x(e.interval[1])
        parts.append(f"<line x1='{a:.1f}' y1='23' x2='{z:.1f}' y2='23' stroke='#225' stroke-width='3'/>")
    if e.estimate is not None and math.isfinite(e.estimate) and (e.estimate > 0 or not log):
        parts.append(f"<circle cx='{x(e.estimate):.1f}' cy='23' r='4.5' fill='#225'/>")
    color = {"held": "#17702b", "refuted": "#a33"}.get(e.verdict, "#8a6d00")
    parts.append(f"<text x='{right + 8}' y='27' font-size='11' fill='{color}'>{e.verdict}</text></svg>")
    return "".join(parts)
