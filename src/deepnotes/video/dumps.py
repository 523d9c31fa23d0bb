"""Per-video class scores: what ``deepnotes video eval --dump FILE`` writes and ``video fuse`` reads.

A dump lists every video of the evaluated list, in the list's order, with its class scores: the softmax of
each view's logits averaged over the views (``--clips`` x ``--crops``), the same numbers eval's top-1 is
computed from. A video that could not be read is listed too, with no scores and ``unreadable`` set: a dump
never drops a line, so two dumps of one list line up row by row. The format follows the file's suffix:

* ``.jsonl`` — one JSON object per line and video:
  ``{"path": "/data/v.mp4", "label": 3, "scores": [0.01, ..., 0.7], "unreadable": false}``
  (``scores`` is ``null`` for an unreadable video; ``path`` is the file that was read).
* ``.npz`` — arrays ``paths`` (N,) str, ``labels`` (N,) int64, ``scores`` (N, K) float32 with rows of NaN for
  unreadable videos, ``unreadable`` (N,) bool; read it with ``numpy.load(FILE)``, no pickle needed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnotes.core.checkpoint import atomic_write_bytes, atomic_write_text

DUMP_SUFFIXES = (".jsonl", ".npz")


@dataclass
class ScoreDump:
    """Scores of N videos over K classes: ``paths`` (N,), ``labels`` (N,) int64, ``scores`` (N, K) float64
    (NaN rows where ``unreadable``), ``unreadable`` (N,) bool; ``source`` names the file in messages."""

    paths: list[str]
    labels: np.ndarray
    scores: np.ndarray
    unreadable: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return int(self.scores.shape[1])


def dump_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"npz"`` from the suffix; any other suffix is a ValueError (checked before an eval
    runs, so a typo does not cost an evaluation)."""
    suffix = Path(path).suffix.lower()
    if suffix not in DUMP_SUFFIXES:
        raise ValueError(f"{path}: a score dump is written as .jsonl (JSON lines) or .npz (numpy arrays); "
                         f"got the suffix {suffix or '(none)'!r}")
    return suffix[1:]


def write_dump(path: str | Path, dump: ScoreDump) -> Path:
    """Write ``dump`` to ``path`` (atomically) in the format of its suffix."""
    if dump_format(path) == "npz":
        buf = io.BytesIO()
        np.savez(buf, paths=np.asarray(dump.paths, dtype=str), labels=dump.labels.astype(np.int64),
                 scores=dump.scores.astype(np.float32), unreadable=dump.unreadable.astype(bool))
        return atomic_write_bytes(path, buf.getvalue())
    lines = []
    for p, label, row, bad in zip(dump.paths, dump.labels, dump.scores, dump.unreadable, strict=True):
        scores = None if bad else [float(x) for x in row]
        lines.append(json.dumps({"path": p, "label": int(label), "scores": scores, "unreadable": bool(bad)}))
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_dump(path: str | Path) -> ScoreDump:
    """A dump written by :func:`write_dump` (or by anyone following the format); a malformed one is a
    ValueError naming the file and, for JSON lines, the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score dump {path} does not exist (write one with `deepnotes video eval RUN "
                                "--list L --dump FILE`)")
    if dump_format(path) == "npz":
        return _read_npz(path)
    lines = path.read_text().splitlines()
    rows = [_jsonl_row(path, n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise ValueError(f"{path} lists no videos")
    widths = {len(r[2]) for r in rows if r[2] is not None}
    if len(widths) > 1:
        raise ValueError(f"{path}: rows have different numbers of class scores ({sorted(widths)})")
    k = widths.pop() if widths else 0
    scores = np.array([r[2] if r[2] is not None else [np.nan] * k for r in rows], dtype=np.float64)
    labels = np.array([r[1] for r in rows], np.int64)
    return ScoreDump([r[0] for r in rows], labels, scores.reshape(len(rows), k),
                     np.array([r[2] is None for r in rows]), str(path))


def _jsonl_row(path: Path, n: int, line: str) -> tuple[str, int, list[float] | None]:
    try:
        obj = json.loads(line)
        scores = obj["scores"]
        if scores is not None:
            scores = [float(x) for x in scores]
        return str(obj["path"]), int(obj["label"]), None if obj.get("unreadable") else scores
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}:{n}: expected {{\"path\", \"label\", \"scores\", \"unreadable\"}}: "
                         f"{type(exc).__name__}: {exc}") from None


def _read_npz(path: Path) -> ScoreDump:
    try:
        with np.load(path, allow_pickle=False) as z:
            paths, labels = [str(p) for p in z["paths"]], z["labels"].astype(np.int64)
            scores = z["scores"].astype(np.float64)
            unreadable = z["unreadable"].astype(bool) if "unreadable" in z else np.isnan(scores).any(1)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a score dump (paths, labels, scores arrays): {exc}") from None
    if scores.ndim != 2 or not len(paths) == len(labels) == len(scores) == len(unreadable):
        raise ValueError(f"{path}: paths, labels, scores (N, K) and unreadable must list the same N videos")
    return ScoreDump(paths, labels, scores, unreadable, str(path))
