"""Read person boxes from a COCO detection results file (mmpose's ``bbox_file``) or a command line.

A results file is a JSON list of ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}``; entries of
another category than 1 (person) are left out, as are boxes scoring below a threshold (mmpose's
``det_bbox_thr``, default 0: every box), boxes with no area and boxes on images the annotation file does not
have. Each reason is counted. A malformed entry is an error naming its index and field.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Detection:
    """One detected person: ``image_id``, ``bbox`` [x, y, w, h] in pixels, detector ``score``."""

    image_id: int
    bbox: np.ndarray
    score: float


@dataclass
class Detections:
    path: Path
    boxes: list[Detection]
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{self.path}: {len(self.boxes)} person boxes; skipped {skipped}"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _entry(det: object, i: int, path: Path) -> tuple[Detection, int]:
    """One entry -> (Detection, category id); a malformed entry is a ValueError naming it."""
    where = f"{path}: [{i}]"
    if not isinstance(det, dict):
        raise ValueError(f"{where} should be an object with image_id, bbox, score, got {det!r:.60}")
    for key in ("image_id", "bbox", "score"):
        if key not in det:
            raise ValueError(f"{where}.{key} is missing")
    if not isinstance(det["image_id"], int) or isinstance(det["image_id"], bool):
        raise ValueError(f"{where}.image_id should be an integer, got {det['image_id']!r:.60}")
    box = det["bbox"]
    if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
        raise ValueError(f"{where}.bbox should be [x, y, w, h] (four finite numbers), got {box!r:.60}")
    if not _number(det["score"]):
        raise ValueError(f"{where}.score should be a finite number, got {det['score']!r:.60}")
    category = det.get("category_id", 1)  # a person-only detector may leave it out
    if not isinstance(category, int) or isinstance(category, bool):
        raise ValueError(f"{where}.category_id should be an integer, got {category!r:.60}")
    return Detection(det["image_id"], np.asarray(box, dtype=np.float64), float(det["score"])), category


def load_detections(path: str | Path, image_ids: set[int] | None = None, score_thr: float = 0.0
                    ) -> Detections:
    """The person boxes of results file ``path`` scoring at least ``score_thr`` on ``image_ids`` (all
    images when None), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detection file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from exc
    if not isinstance(data, list):
        raise ValueError(f"{path}: a COCO detection results file is a list of {{image_id, bbox, score, "
                         f"category_id}}, got a {type(data).__name__}")
    out = Detections(path, [])
    for i, det in enumerate(data):
        box, category = _entry(det, i, path)
        reason = ("not_a_person" if category != 1 else
                  "unknown_image" if image_ids is not None and box.image_id not in image_ids else
                  "below_score_thr" if box.score < score_thr else
                  "zero_area_box" if box.bbox[2] <= 0 or box.bbox[3] <= 0 else None)
        if reason:
            out.skipped[reason] += 1
        else:
            out.boxes.append(box)
    return out


def parse_boxes(text: str) -> list[np.ndarray]:
    """``"x,y,w,h;x,y,w,h"`` -> boxes (4,); a malformed or empty box is a ValueError naming it."""
    boxes = []
    for k, part in enumerate(p for p in text.split(";") if p.strip()):
        try:
            box = np.asarray([float(v) for v in part.split(",")], dtype=np.float64)
        except ValueError:
            box = np.zeros(0)
        if box.shape != (4,) or not np.isfinite(box).all():
            raise ValueError(f"box {k + 1} ({part.strip()!r}): expected x,y,w,h (four numbers)")
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"box {k + 1} ({part.strip()!r}) needs a positive width and height")
        boxes.append(box)
    if not boxes:
        raise ValueError(f"no box in {text!r}; give x,y,w,h, several separated by ';'")
    return boxes
