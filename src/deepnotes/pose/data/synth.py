"""A deterministic renderer of articulated stick figures with the 17 COCO joints.

Each image holds a few figures on a random background (noise, gradients, stripes), drawn with thick limbs
whose widths, lengths and angles are random. As in photos, left and right are told apart by which way the
figure faces: a figure facing the camera shows a face (eyes, nose) and has its left side on the image
right; one facing away shows a plain dark head and has its left side on the image left. Both sides share
colours, so a mirrored figure is again a valid figure with left and right swapped, which is what flip
augmentation assumes. Random occluders cover some joints: those keep their position with visibility 1,
as COCO marks a labelled but hidden joint; joints outside the image get visibility 0. The output is COCO
keypoint JSON plus PNG images, so every reader and tool that speaks COCO works on it.

Image ``i`` of seed ``s`` depends only on ``(s, i)``: asking for more images never changes earlier ones.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepnotes.core import atomic_write_json, progress
from deepnotes.pose.skeleton import NUM_JOINTS, coco_category

# bumped whenever the rendering changes, so caches of older data (and models trained on it) are not reused;
# 2: figures facing the camera have their left side on the image right (it was mirrored before)
RENDER_VERSION = 2


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def sample_pose(rng: np.random.Generator, height: float, center: np.ndarray, facing: int = 1) -> np.ndarray:
    """Joint positions (17, 2) of a random figure about ``height`` pixels tall, pelvis near ``center``;
    ``facing`` 1: toward the camera, -1: away from it."""
    down = _rot(np.array([0.0, 1.0]), rng.normal(0, 0.25))  # torso lean
    # toward the person's left: the image's +x for a figure facing the camera (its left is our right)
    side = facing * np.array([down[1], -down[0]])
    # the rotation sign that swings the left limbs away from the body (right ones: opposite)
    outward = -facing
    torso = 0.30 * height * rng.uniform(0.9, 1.1)
    pelvis = center + 0.1 * height * down
    neck = pelvis - torso * down
    k = np.zeros((NUM_JOINTS, 2))
    sw, hw = 0.11 * height * rng.uniform(0.8, 1.2), 0.08 * height * rng.uniform(0.8, 1.2)
    k[5], k[6] = neck + sw * side, neck - sw * side
    k[11], k[12] = pelvis + hw * side, pelvis - hw * side
    for sh, el, wr, sign in ((5, 7, 9, 1.0), (6, 8, 10, -1.0)):
        sign *= outward  # left limbs swing out to the person's left, right limbs to its right
        upper = _rot(down, sign * rng.uniform(-0.4, 2.6)) * 0.17 * height
        fore = _rot(upper / np.linalg.norm(upper), sign * rng.uniform(-0.2, 2.2)) * 0.15 * height
        k[el] = k[sh] + upper
        k[wr] = k[el] + fore
    for hip, kn, an, sign in ((11, 13, 15, 1.0), (12, 14, 16, -1.0)):
        sign *= outward
        thigh = _rot(down, sign * rng.uniform(-0.3, 0.9)) * 0.23 * height
        shin = _rot(thigh / np.linalg.norm(thigh), rng.uniform(-1.3, 1.3)) * 0.22 * height
        k[kn] = k[hip] + thigh
        k[an] = k[kn] + shin
    up = -down
    turn = rng.uniform(-0.5, 0.5)  # head yaw moves the face features sideways
    head = neck + 0.13 * height * up
    k[0] = head + 0.02 * height * up * -1 + turn * 0.04 * height * side
    k[1], k[2] = (head + 0.025 * height * up + (turn * 0.04 + s * 0.035) * height * side for s in (1, -1))
    k[3], k[4] = (head + 0.015 * height * up + (turn * 0.02 + s * 0.07) * height * side for s in (1, -1))
    return k


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(3)
    base = rng.uniform(0, 255, 3)
    if kind == 0:  # smooth noise
        small = rng.uniform(-60, 60, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
        img = base + cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # gradient
        t = np.linspace(0, 1, w)[None, :, None] * np.ones((h, 1, 1))
        img = base * (1 - t) + rng.uniform(0, 255, 3) * t
    else:  # stripes
        period = rng.uniform(6, 24)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        img = base + 40 * np.sign(np.sin(2 * np.pi * phase))[..., None]
    img = img + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, hue_lo: int, hue_hi: int) -> tuple[int, int, int]:
    hsv = np.array([[[rng.integers(hue_lo, hue_hi), rng.integers(150, 256), rng.integers(120, 256)]]],
                   np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_figure(img: np.ndarray, mask: np.ndarray, k: np.ndarray, rng: np.random.Generator, height: float,
                facing: int = 1) -> None:
    """Draw the figure with joints ``k`` (17, 2) onto ``img`` (BGR) and its silhouette onto ``mask``."""
    arms, legs, torso_c = _colour(rng, 0, 180), _colour(rng, 0, 180), _colour(rng, 0, 180)
    head_c = (int(rng.integers(150, 220)),) * 3 if facing == 1 else (int(rng.integers(20, 70)),) * 3
    width = max(2, int(round(height * rng.uniform(0.04, 0.08))))
    pt = lambda j: (int(round(k[j, 0] * 16)), int(round(k[j, 1] * 16)))  # noqa: E731  (4 fractional bits)
    quad = np.round(k[[5, 6, 12, 11]] * 16).astype(np.int32)
    for target, c in ((img, torso_c), (mask, 255)):
        cv2.fillConvexPoly(target, quad, c, cv2.LINE_AA, shift=4)
    limbs = [(5, 7, arms), (7, 9, arms), (11, 13, legs), (13, 15, legs),
             (6, 8, arms), (8, 10, arms), (12, 14, legs), (14, 16, legs)]
    for a, b, c in limbs:
        for target, cc in ((img, c), (mask, 255)):
            cv2.line(target, pt(a), pt(b), cc, width, cv2.LINE_AA, shift=4)
    head = (k[1] + k[2]) / 2
    r = int(round(0.09 * height * 16))
    hc = (int(round(head[0] * 16)), int(round(head[1] * 16)))
    cv2.circle(img, hc, r, head_c, -1, cv2.LINE_AA, shift=4)
    cv2.circle(mask, hc, r, 255, -1, cv2.LINE_AA, shift=4)
    if facing == 1:  # the face: dark eyes, a red nose
        dot = max(16, int(round(0.015 * height * 16)))
        for j, c in ((1, (20, 20, 20)), (2, (20, 20, 20)), (0, (30, 30, 220))):
            cv2.circle(img, pt(j), dot, c, -1, cv2.LINE_AA, shift=4)


def render_image(seed: int, index: int, size: tuple[int, int] = (128, 128), max_people: int = 2,
                 occluder_prob: float = 0.4) -> tuple[np.ndarray, list[dict]]:
    """Render image ``index`` of dataset ``seed``: ``(BGR uint8 (H, W, 3), annotations)``.

    Each annotation has ``keypoints`` (17, 3) as x, y, v (COCO visibility), ``bbox`` [x, y, w, h] of the
    drawn silhouette and its ``area`` in pixels.
    """
    rng = np.random.default_rng([seed, index])
    h, w = size
    img = _background(rng, h, w)
    people = []
    for _ in range(int(rng.integers(1, max_people + 1))):
        height = rng.uniform(0.45, 0.9) * h
        center = rng.uniform([0.15 * w, 0.35 * h], [0.85 * w, 0.65 * h])
        facing = 1 if rng.uniform() < 0.6 else -1
        k = sample_pose(rng, height, center, facing)
        # rotate the whole figure a little about its pelvis (people bend, cameras tilt)
        angle = rng.normal(0, 0.2)
        k = np.array([center + _rot(p - center, angle) for p in k])
        mask = np.zeros((h, w), np.uint8)
        draw_figure(img, mask, k, rng, height, facing)
        for prev in people:  # a figure drawn later hides the joints of earlier ones it covers
            prev["occluded"] |= _covered(prev["k"], mask)
        hidden = np.zeros(NUM_JOINTS, bool)
        hidden[:3] = facing == -1  # face points of a figure seen from behind: labelled, not visible
        people.append({"k": k, "mask": mask, "occluded": hidden})
    if rng.uniform() < occluder_prob:
        occ = np.zeros((h, w), np.uint8)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ow, oh = rng.uniform(0.1, 0.35) * w, rng.uniform(0.1, 0.35) * h
        box = np.array([[x0, y0], [x0 + ow, y0], [x0 + ow, y0 + oh], [x0, y0 + oh]], np.int32)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.fillConvexPoly(img, box, colour)
        cv2.fillConvexPoly(occ, box, 255)
        for p in people:
            p["occluded"] |= _covered(p["k"], occ)
    anns = []
    for p in people:
        inside = (p["k"][:, 0] >= 0) & (p["k"][:, 0] <= w - 1) & (p["k"][:, 1] >= 0) & (p["k"][:, 1] <= h - 1)
        vis = np.where(inside, np.where(p["occluded"], 1, 2), 0)
        kp = np.concatenate([np.where(inside[:, None], p["k"], 0.0), vis[:, None]], axis=1)
        ys, xs = np.nonzero(p["mask"])
        if len(xs) == 0 or not inside.any():
            continue
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1)]
        anns.append({"keypoints": kp, "bbox": bbox, "area": float(len(xs))})
    return img, anns


def _covered(k: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    xi = np.clip(np.round(k[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(k[:, 1]).astype(int), 0, h - 1)
    inside = (k[:, 0] >= 0) & (k[:, 0] <= w - 1) & (k[:, 1] >= 0) & (k[:, 1] <= h - 1)
    return inside & (mask[yi, xi] > 0)


def write_dataset(out: str | Path, n: int, seed: int = 0, size: tuple[int, int] = (128, 128),
                  max_people: int = 2, name: str = "annotations.json") -> Path:
    """Render ``n`` images into ``out/images/`` and their COCO keypoint JSON to ``out/name``; returns the
    JSON path."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in progress(range(n), desc="rendering", total=n):
        img, anns = render_image(seed, i, size, max_people)
        file_name = f"{seed:04d}_{i:06d}.png"
        if not cv2.imwrite(str(out / "images" / file_name), img):
            raise OSError(f"could not write {out / 'images' / file_name}")
        images.append({"id": i + 1, "file_name": file_name, "height": size[0], "width": size[1]})
        for a in anns:
            kp = a["keypoints"]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                "bbox": [round(v, 2) for v in a["bbox"]], "area": round(a["area"], 2),
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "keypoints": [round(float(v), 2) if j % 3 != 2 else int(v)
                              for j, v in enumerate(kp.reshape(-1))],
            })
    path = out / name
    atomic_write_json(path, {"info": {"description": f"deepnotes synthetic figures, seed {seed}"},
                             "images": images, "annotations": annotations, "categories": [coco_category()]})
    return path
