"""Late fusion of two score dumps (``deepnotes video fuse``): two-stream fusion on the per-video scores of any
two runs, e.g. an RGB run and a flow run evaluated with ``video eval --dump``.

The fused score of a video is the two-stream model's own fusion (:class:`LateFusion`): the weighted average
``(w1 p1 + w2 p2) / (w1 + w2)`` of the dumps' class probabilities (a dump's scores are already softmax
probabilities; LateFusion applies softmax to its inputs, so it is given their logarithms, whose softmax is
the probabilities again). Each dump and the fusion are scored with :mod:`deepnotes.video.metrics`, on the
videos both dumps could read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.video.dumps import ScoreDump, dump_format, read_dump, write_dump
from deepnotes.video.metrics import confusion, summarize, topk_correct
from deepnotes.video.models.two_stream import DEFAULT_WEIGHTS, LateFusion


def check_same_videos(a: ScoreDump, b: ScoreDump) -> None:
    """Two dumps must list the same videos in the same order over the same classes; the first mismatch is a
    ValueError naming both rows. Videos are compared by label and by file name without extension (as the
    flow list pairs with the RGB list): ``/data/v/a.mp4`` matches ``/other/disk/a.mp4`` and flow folder
    ``external/1f2e/a``, so dumps from other machines or of the flow folders line up."""
    if len(a) != len(b):
        raise ValueError(f"{a.source} lists {len(a)} videos but {b.source} lists {len(b)}; fuse dumps of the "
                         "same list")
    if a.num_classes and b.num_classes and a.num_classes != b.num_classes:
        raise ValueError(f"{a.source} has scores over {a.num_classes} classes but {b.source} over "
                         f"{b.num_classes}")
    for n, (pa, la, pb, lb) in enumerate(zip(a.paths, a.labels, b.paths, b.labels, strict=True), start=1):
        if _name(pa) != _name(pb) or la != lb:
            raise ValueError(f"first mismatch at video {n}: {a.source} has {pa} (label {la}) but {b.source} "
                             f"has {pb} (label {lb}); the two dumps must list the same videos in order")


def _name(path: str) -> str:
    return Path(path).with_suffix("").name


def fuse(a: ScoreDump, b: ScoreDump, weights: Sequence[float] = DEFAULT_WEIGHTS) -> ScoreDump:
    """The weighted late fusion of two matching dumps (:func:`check_same_videos`); a video unreadable in
    either is unreadable in the fusion."""
    check_same_videos(a, b)
    bad = a.unreadable | b.unreadable
    k = max(a.num_classes, b.num_classes)
    fused = np.full((len(a), k), np.nan)
    if (~bad).any():
        logs = [torch.from_numpy(d.scores[~bad]).clamp_min(1e-12).log() for d in (a, b)]
        fused[~bad] = LateFusion(weights).double()(logs).numpy()
    return ScoreDump(list(a.paths), a.labels.copy(), fused, bad, "fusion")


def dump_metrics(dump: ScoreDump, keep: np.ndarray | None = None) -> dict[str, Any]:
    """top-1, top-5, mean class accuracy, loss and n over the readable videos (and ``keep``, when given)."""
    keep = ~dump.unreadable if keep is None else keep & ~dump.unreadable
    k = dump.num_classes
    probs = torch.from_numpy(dump.scores[keep])
    labels = torch.from_numpy(dump.labels[keep])
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{dump.source}: a label is outside the {k} classes its scores cover")
    loss = float(-probs.gather(1, labels[:, None]).clamp_min(1e-12).log().sum()) if len(labels) else 0.0
    top5 = topk_correct(probs, labels, 5) if len(labels) else 0
    out = summarize(confusion(probs.argmax(1), labels, k), top5, loss)
    return {**out, "unreadable": int(dump.unreadable.sum())}


def fuse_files(first: str | Path, second: str | Path, weights: Sequence[float] = DEFAULT_WEIGHTS,
               out: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Read two dumps, fuse them, optionally write the fusion to ``out`` (a dump, ``.jsonl`` or ``.npz``).

    Returns ``{"first": ..., "second": ..., "fusion": ...}``: the metrics of each (:func:`dump_metrics`, plus
    ``dump``, its file) on the videos both could read, so the three are comparable.
    """
    if out is not None:
        dump_format(out)  # a wrong suffix fails before any work
    a, b = read_dump(first), read_dump(second)
    fused = fuse(a, b, weights)
    if out is not None:
        write_dump(out, fused)
    both = ~fused.unreadable
    w = [float(x) for x in weights]
    return {"first": {**dump_metrics(a, both), "dump": a.source},
            "second": {**dump_metrics(b, both), "dump": b.source},
            "fusion": {**dump_metrics(fused), "dump": str(out) if out is not None else None, "weights": w}}
