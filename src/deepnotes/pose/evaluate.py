"""Predict on top-down crops, map back to the image, and score: OKS AP (pycocotools), PCK, pixel error.

Each person's COCO result score is the head's own confidence (mean joint score: ``1 - sigma`` for RLE,
the heatmap peak for heatmaps, 1 for plain regression), because AP ranks detections by it.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from deepnotes.core import progress
from deepnotes.pose.data.coco import PersonSample
from deepnotes.pose.data.topdown import TopDownDataset, collate
from deepnotes.pose.skeleton import COCO_SIGMAS, NUM_JOINTS, coco_category
from deepnotes.pose.transforms import apply_affine


@dataclass
class Predictions:
    """Per person (in dataset order, unreadable images left out): ``coords`` (P, K, 2) image pixels,
    ``scores`` (P, K) joint confidences, ``indices`` (P,) into the dataset's samples."""

    coords: np.ndarray
    scores: np.ndarray
    indices: np.ndarray
    unreadable: int = 0


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: TopDownDataset, device: torch.device, batch_size: int = 64,
            workers: int = 0) -> Predictions:
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    coords, scores, indices, unreadable = [], [], [], 0
    for batch in progress(loader, desc="predict", total=len(loader)):
        unreadable += batch["unreadable"]
        if "image" not in batch:
            continue
        xy, s = model.decode(model(batch["image"].to(device)))
        inv = batch["inverse"].numpy().astype(np.float64)
        xy = xy.cpu().numpy().astype(np.float64)
        coords.append(np.stack([apply_affine(m, p) for m, p in zip(inv, xy, strict=True)]))
        scores.append(s.cpu().numpy())
        indices.append(batch["index"].numpy())
    if not coords:
        return Predictions(np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS)), np.zeros(0, int),
                           unreadable)
    return Predictions(np.concatenate(coords), np.concatenate(scores), np.concatenate(indices), unreadable)


def coco_results(samples: list[PersonSample], preds: Predictions) -> list[dict]:
    """COCO keypoint results: one entry per person, ``score`` = mean joint confidence."""
    out = []
    for xy, s, i in zip(preds.coords, preds.scores, preds.indices, strict=True):
        kp = np.concatenate([xy, s[:, None]], axis=1).reshape(-1)
        out.append({"image_id": int(samples[i].image_id), "category_id": 1,
                    "keypoints": [round(float(v), 3) for v in kp], "score": round(float(s.mean()), 5)})
    return out


def oks_ap(samples: list[PersonSample], results: list[dict]) -> dict[str, float]:
    """AP, AP50, AP75 by pycocotools' OKS evaluation with COCO's sigmas, against the usable annotations."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    image_ids = sorted({s.image_id for s in samples})
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in image_ids],
        "categories": [coco_category()],
        "annotations": [
            {"id": k + 1, "image_id": s.image_id, "category_id": 1, "iscrowd": 0, "area": s.area,
             "bbox": s.bbox.tolist(), "keypoints": s.keypoints.reshape(-1).tolist(),
             "num_keypoints": int((s.keypoints[:, 2] > 0).sum())}
            for k, s in enumerate(samples)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables; we return the numbers
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


def pixel_metrics(samples: list[PersonSample], preds: Predictions) -> dict[str, float]:
    """PCK@0.05 and PCK@0.1 (distance within that fraction of the box's longer side) and mean error (px),
    over labelled joints."""
    errors, norms = [], []
    for xy, i in zip(preds.coords, preds.indices, strict=True):
        s = samples[i]
        labelled = s.keypoints[:, 2] > 0
        errors.append(np.linalg.norm(xy[labelled] - s.keypoints[labelled, :2], axis=1))
        norms.append(np.full(int(labelled.sum()), max(s.bbox[2], s.bbox[3])))
    if not errors:
        return {"PCK@0.05": 0.0, "PCK@0.1": 0.0, "mean_error_px": float("nan")}
    err, norm = np.concatenate(errors), np.concatenate(norms)
    return {"PCK@0.05": float((err <= 0.05 * norm).mean()), "PCK@0.1": float((err <= 0.1 * norm).mean()),
            "mean_error_px": float(err.mean())}


def joint_errors(samples: list[PersonSample], preds: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Per labelled joint: (error in px, joint score), flattened over persons."""
    errs, scores = [], []
    for xy, s_, i in zip(preds.coords, preds.scores, preds.indices, strict=True):
        labelled = samples[i].keypoints[:, 2] > 0
        errs.append(np.linalg.norm(xy[labelled] - samples[i].keypoints[labelled, :2], axis=1))
        scores.append(s_[labelled])
    return np.concatenate(errs), np.concatenate(scores)


def evaluate(model: torch.nn.Module, samples: list[PersonSample], device: torch.device, batch_size: int = 64,
             workers: int = 0) -> tuple[dict[str, float], list[dict]]:
    """All metrics for ``samples`` plus the COCO results they were scored with."""
    dataset = TopDownDataset(samples, model.config.input_hw)
    preds = predict(model, dataset, device, batch_size, workers)
    results = coco_results(samples, preds)
    # persons on unreadable images are reported (unreadable_images), not scored as misses of the model
    scored = [samples[i] for i in preds.indices]
    metrics = {**oks_ap(scored, results), **pixel_metrics(samples, preds),
               "persons": int(len(preds.indices)), "unreadable_images": int(preds.unreadable)}
    return metrics, results


@torch.no_grad()
def predict_box(model: torch.nn.Module, image_rgb: np.ndarray, box: tuple[float, float, float, float],
                device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (17, 2) in image pixels and their scores (17,) for the person in ``box`` = (x, y, w, h)."""
    from deepnotes.pose.data.topdown import to_tensor
    from deepnotes.pose.transforms import box_to_center_size, crop_affine, invert_affine, warp

    hw = model.config.input_hw
    center, size = box_to_center_size(np.asarray(box, dtype=np.float64), hw[1] / hw[0])
    m = crop_affine(center, size, hw)
    model.eval()
    xy, scores = model.decode(model(to_tensor(warp(image_rgb, m, hw))[None].to(device)))
    return apply_affine(invert_affine(m), xy[0].cpu().numpy().astype(np.float64)), scores[0].cpu().numpy()
