"""ActivityNet-style JSON for ground truth and detection results (segments in seconds).

Ground truth: ``{"version", "taxonomy": [names], "database": {video_id: {"subset", "duration", "fps",
"frames", "annotations": [{"label", "segment": [t0, t1], "frames": [f0, f1], "boxes": [[f, x1, y1, x2, y2],
...]}]}}}``. Results: ``{"version", "results": {video_id: [{"label", "score", "segment": [t0, t1], "frames":
[f0, f1], "boxes": [[f, x1, y1, x2, y2], ...]}]}, "external_data": {...}}``; ActivityNet's evaluation reads
the ``label``, ``score`` and ``segment`` fields, the rest are deepnotes' additions (frames, actor boxes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core.checkpoint import atomic_write_json
from deepnotes.video.untrimmed.synth import CLASSES, UntrimmedVideo

VERSION = "deepnotes-untrimmed-1"


def ground_truth_json(videos: dict[str, UntrimmedVideo], subset: str = "validation",
                      classes: tuple[str, ...] = CLASSES) -> dict[str, Any]:
    database = {}
    for vid, v in videos.items():
        anns = [{"label": classes[i.label], "segment": [i.start / v.fps, i.end / v.fps],
                 "frames": [i.start, i.end],
                 "boxes": [[i.start + k, *map(float, b)] for k, b in enumerate(i.boxes)]}
                for i in v.instances]
        database[vid] = {"subset": subset, "duration": v.num_frames / v.fps, "fps": v.fps,
                         "frames": v.num_frames, "annotations": anns}
    return {"version": VERSION, "taxonomy": list(classes), "database": database}


def results_json(detections: dict[str, list[dict[str, Any]]], details: str = "") -> dict[str, Any]:
    """Wrap per-video detection dicts (see :func:`detection_entry`) in the ActivityNet result layout."""
    return {"version": VERSION, "results": detections,
            "external_data": {"used": False,
                              "details": details or "trained on deepnotes synthetic data only"}}


def detection_entry(start: int, end: int, label: str, score: float, fps: float,
                    boxes: np.ndarray | None = None) -> dict[str, Any]:
    """One detection: frames [start, end), its class name and score; ``boxes`` (T, 4) of the whole video
    (NaN where none) contribute the boxes of the segment's frames."""
    entry = {"label": label, "score": round(float(score), 6), "segment": [start / fps, end / fps],
             "frames": [int(start), int(end)]}
    if boxes is not None:
        entry["boxes"] = [[f, *(round(float(c), 2) for c in boxes[f])] for f in range(start, end)
                          if not np.isnan(boxes[f, 0])]
    return entry


def write_json(path: str | Path, obj: dict[str, Any]) -> Path:
    return atomic_write_json(path, obj)


def load_ground_truth(path: str | Path) -> tuple[dict[str, list[tuple[float, float, int]]], list[str]]:
    """ActivityNet ground truth -> ({video: [(t0, t1, label index)]}, class names); errors name the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ground truth JSON: {exc}") from None
    if not isinstance(data, dict) or "database" not in data:
        raise ValueError(f"{path}: expected an object with a 'database' field (ActivityNet format)")
    classes = list(data.get("taxonomy") or sorted({a["label"] for v in data["database"].values()
                                                   for a in v.get("annotations", [])}))
    out = {}
    for vid, entry in data["database"].items():
        segs = []
        for k, ann in enumerate(entry.get("annotations", [])):
            where = f"{path}: database.{vid}.annotations[{k}]"
            if ann.get("label") not in classes:
                raise ValueError(f"{where}.label {ann.get('label')!r} is not in the taxonomy")
            seg = ann.get("segment")
            if not (isinstance(seg, list) and len(seg) == 2 and seg[0] <= seg[1]):
                raise ValueError(f"{where}.segment must be [start, end] seconds with start <= end, "
                                 f"got {seg!r}")
            segs.append((float(seg[0]), float(seg[1]), classes.index(ann["label"])))
        out[vid] = segs
    return out, classes


def load_results(path: str | Path, classes: list[str]) -> dict[str, list[tuple[float, float, int, float]]]:
    """ActivityNet result JSON -> {video: [(t0, t1, label index, score)]}; errors name the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read result JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ValueError(f"{path}: expected an object with a 'results' field (ActivityNet result format)")
    out = {}
    for vid, dets in data["results"].items():
        rows = []
        for k, d in enumerate(dets):
            where = f"{path}: results.{vid}[{k}]"
            if d.get("label") not in classes:
                raise ValueError(f"{where}.label {d.get('label')!r} is not one of {classes}")
            seg = d.get("segment")
            if not (isinstance(seg, list) and len(seg) == 2):
                raise ValueError(f"{where}.segment must be [start, end] seconds, got {seg!r}")
            if not isinstance(d.get("score"), int | float):
                raise ValueError(f"{where}.score must be a number, got {d.get('score')!r}")
            rows.append((float(seg[0]), float(seg[1]), classes.index(d["label"]), float(d["score"])))
        out[vid] = rows
    return out
