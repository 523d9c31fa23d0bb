"""Read COCO keypoint annotation JSON into top-down person samples, with clear errors and skip counts.

A malformed file is an error that names the field (``annotations[12].keypoints: ...``). Annotations that
are merely unusable (missing or zero-area box, no labelled keypoint, a labelled keypoint outside the image,
an image file that is missing) are skipped and counted in :attr:`CocoKeypoints.skipped`, so a long job
never dies on one bad sample and nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepnotes.core import resolve_inside
from deepnotes.pose.skeleton import NUM_JOINTS


class AnnotationError(ValueError):
    """A COCO file that cannot be read; the message names the file and the field."""


@dataclass
class PersonSample:
    """One annotated person: image path, box [x, y, w, h] and keypoints (17, 3) as x, y, visibility."""

    ann_id: int
    image_id: int
    image_path: Path
    bbox: np.ndarray
    keypoints: np.ndarray
    area: float


@dataclass
class CocoKeypoints:
    """``samples``: the usable persons; ``images``: id -> its entry plus ``path``; ``skipped``: reason ->
    count; ``ignored``: person annotations COCO's evaluation ignores rather than drops (crowds, persons
    without a labelled joint), as pycocotools annotations, so that a detector's box on them is no false
    positive."""

    path: Path
    samples: list[PersonSample]
    images: dict[int, dict]
    skipped: Counter = field(default_factory=Counter)
    ignored: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{self.path}: {len(self.samples)} persons in {len(self.images)} images; skipped {skipped}"


def default_images_dir(ann_path: str | Path) -> Path:
    """The ``images/`` folder beside the annotation file (what ``--images`` defaults to)."""
    return Path(ann_path).resolve().parent / "images"


def _field(obj: dict, key: str, where: str, path: Path, kind: type | tuple) -> object:
    if not isinstance(obj, dict):
        raise AnnotationError(f"{path}: {where} should be an object, got {type(obj).__name__}")
    if key not in obj:
        raise AnnotationError(f"{path}: {where}.{key} is missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AnnotationError(f"{path}: {where}.{key} should be {_kind_name(kind)}, got {value!r:.60}")
    return value


def _kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _read_json(path: Path) -> dict:
    """The file's top-level object; a missing file, bad JSON or another top level is an AnnotationError."""
    if not path.is_file():
        raise AnnotationError(f"annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from exc
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: the top level should be an object with 'images' and 'annotations'")
    return data


def _index_images(data: dict, path: Path, root: Path) -> dict[int, dict]:
    """image id -> its ``images`` entry plus ``path`` (the file under ``root``); ids must be unique."""
    images: dict[int, dict] = {}
    first_at: dict[int, int] = {}  # image id -> index of its entry in "images"
    for i, im in enumerate(_field(data, "images", "(top level)", path, list)):
        where = f"images[{i}]"
        image_id = _field(im, "id", where, path, int)
        if image_id in first_at:  # a second image with this id would take the first one's persons
            raise AnnotationError(f"{path}: {where}.id {image_id} repeats images[{first_at[image_id]}].id; "
                                  "image ids must be unique")
        first_at[image_id] = i
        file_name = _field(im, "file_name", where, path, str)
        try:
            image_path = resolve_inside(root, file_name)
        except ValueError as exc:
            raise AnnotationError(f"{path}: {where}.file_name: {exc}") from exc
        images[image_id] = {**im, "path": image_path}
    return images


def _keypoints(ann: dict, where: str, path: Path) -> np.ndarray:
    """The annotation's keypoints as (17, 3) x, y, v; anything but 51 numbers is an AnnotationError."""
    kp = _field(ann, "keypoints", where, path, list)
    if len(kp) != 3 * NUM_JOINTS or not all(isinstance(v, int | float) for v in kp):
        raise AnnotationError(f"{path}: {where}.keypoints should be {3 * NUM_JOINTS} numbers (x, y, v per "
                              f"COCO joint), got {len(kp)} values")
    return np.asarray(kp, dtype=np.float64).reshape(NUM_JOINTS, 3)


def _box(bbox: object, where: str, path: Path) -> np.ndarray:
    """[x, y, w, h] as floats; a malformed or non-finite box is an AnnotationError."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        raise AnnotationError(f"{path}: {where}.bbox should be [x, y, w, h], got {bbox!r:.60}")
    box = np.asarray(bbox, dtype=np.float64)
    if not np.isfinite(box).all():
        raise AnnotationError(f"{path}: {where}.bbox has a non-finite value: {box.tolist()}")
    return box


def _area(ann: dict, bbox: np.ndarray, where: str, path: Path) -> float:
    # OKS scales by the person's area; a missing, zero or non-finite area would make every OKS 0, so the
    # box area stands in for it (a non-number is an error)
    area = ann.get("area")
    if area is not None and (not isinstance(area, int | float) or isinstance(area, bool)):
        raise AnnotationError(f"{path}: {where}.area should be a number, got {area!r:.60}")
    if area is None or not math.isfinite(area) or area <= 0:
        area = bbox[2] * bbox[3]
    return float(area)


def _skip_reason(bbox: np.ndarray, kp: np.ndarray, im: dict) -> str | None:
    """Why a well-formed annotation is unusable (the first reason, in this order), or None."""
    if bbox[2] <= 0 or bbox[3] <= 0:
        return "zero_area_box"
    labelled = kp[:, 2] > 0
    if not labelled.any():
        return "no_keypoints"
    w, h = im.get("width"), im.get("height")
    if isinstance(w, int | float) and isinstance(h, int | float):  # without the image's size: not checked
        x, y = kp[labelled, 0], kp[labelled, 1]
        if (x < 0).any() or (y < 0).any() or (x > w).any() or (y > h).any():
            return "keypoint_outside_image"
    return None


def _ignored(ann: dict, where: str, path: Path) -> dict | None:
    """A crowd or a person without labelled joints as a pycocotools annotation that evaluation ignores;
    None for another category or without a usable box (such entries were never read before: they stay
    lenient, never an error)."""
    if ann.get("category_id", 1) != 1:
        return None
    try:
        bbox = _box(ann.get("bbox"), where, path)
        kp = _keypoints(ann, where, path) if "keypoints" in ann else np.zeros((NUM_JOINTS, 3))
        area = _area(ann, bbox, where, path)
    except AnnotationError:
        return None
    if bbox[2] <= 0 or bbox[3] <= 0:
        return None
    return {"image_id": ann["image_id"], "category_id": 1, "iscrowd": int(bool(ann.get("iscrowd", 0))),
            "bbox": bbox.tolist(), "area": area, "keypoints": kp.reshape(-1).tolist(),
            "num_keypoints": int((kp[:, 2] > 0).sum())}


def _samples(data: dict, path: Path, images: dict[int, dict], check_files: bool
             ) -> tuple[list[PersonSample], Counter, list[dict]]:
    """The usable person annotations, the count of each reason the others were skipped for, and the ones
    evaluation ignores."""
    skipped: Counter = Counter()
    exists: dict[int, bool] = {}
    samples, ignored = [], []
    for i, ann in enumerate(_field(data, "annotations", "(top level)", path, list)):
        where = f"annotations[{i}]"
        image_id = _field(ann, "image_id", where, path, int)
        if image_id not in images:
            raise AnnotationError(f"{path}: {where}.image_id {image_id} is not in 'images'")
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
            skipped["not_a_single_person"] += 1
            ignored.extend(r for r in [_ignored(ann, where, path)] if r is not None)
            continue
        kp = _keypoints(ann, where, path)
        if ann.get("bbox") is None:
            skipped["missing_box"] += 1
            continue
        bbox = _box(ann["bbox"], where, path)
        im = images[image_id]
        reason = _skip_reason(bbox, kp, im)
        if reason is None and check_files:  # each image file is looked for once
            if image_id not in exists:
                exists[image_id] = im["path"].is_file()
            reason = None if exists[image_id] else "missing_image"
        if reason is not None:
            skipped[reason] += 1
            if reason == "no_keypoints":
                ignored.extend(r for r in [_ignored(ann, where, path)] if r is not None)
            continue
        area = _area(ann, bbox, where, path)
        samples.append(PersonSample(int(ann.get("id", i + 1)), image_id, im["path"], bbox, kp, area))
    return samples, skipped, ignored


def load_coco(ann_path: str | Path, images_dir: str | Path | None = None,
              check_files: bool = True) -> CocoKeypoints:
    """Parse a COCO keypoint file. ``images_dir``: the folder ``file_name`` is relative to (default
    ``images/`` beside the JSON). Only ``category_id == 1`` (person) annotations with ``iscrowd == 0`` are
    used."""
    path = Path(ann_path)
    data = _read_json(path)
    root = Path(images_dir) if images_dir is not None else default_images_dir(path)
    images = _index_images(data, path, root)
    samples, skipped, ignored = _samples(data, path, images, check_files)
    return CocoKeypoints(path=path, samples=samples, images=images, skipped=skipped, ignored=ignored)
