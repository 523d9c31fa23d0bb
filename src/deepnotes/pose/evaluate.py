"""Predict on top-down crops, map back to the image, and score: OKS AP (pycocotools), PCK, pixel error.

The crops come from the ground-truth boxes or from a detector's (``detections``). Each person is scored as
mmpose scores it (``rescoring``): the box score (1 for ground-truth boxes) times the mean of its joint
confidences above 0.2 (``1 - sigma`` for RLE, the heatmap peak for heatmaps, 1 for plain regression), since
AP ranks persons by it; then OKS NMS drops duplicates before pycocotools scores the rest.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from deepnotes.core import progress
from deepnotes.pose.data.coco import CocoKeypoints, PersonSample
from deepnotes.pose.data.detections import Detection
from deepnotes.pose.data.topdown import TopDownDataset, collate, to_tensor
from deepnotes.pose.rescoring import KEYPOINT_THR, NMS_THR, nms_per_image, rescore
from deepnotes.pose.skeleton import COCO_SIGMAS, NUM_JOINTS, coco_category
from deepnotes.pose.transforms import apply_affine, box_to_center_size, crop_affine, invert_affine, warp


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
            workers: int = 0, flip: bool = False) -> Predictions:
    """Joints of every readable crop of ``dataset`` in image pixels; ``flip``: with the flip test."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    coords, scores, indices, unreadable = [], [], [], 0
    for batch in progress(loader, desc="predict", total=len(loader)):
        unreadable += batch["unreadable"]
        if "image" not in batch:
            continue
        xy, s = model.predict(batch["image"].to(device), flip=flip)
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


def oks_ap(samples: list[PersonSample], results: list[dict], ignored: list[dict] = (),
           image_ids: set[int] | None = None) -> dict[str, float]:
    """AP, AP50, AP75 by pycocotools' OKS evaluation with COCO's sigmas, against the usable annotations
    plus ``ignored`` ones (crowds, persons without labelled joints: pycocotools ignores them, so a result
    on them is no false positive), on ``image_ids`` (default: the images of ``samples``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    image_ids = sorted({s.image_id for s in samples} if image_ids is None else image_ids)
    kept = set(image_ids)
    annotations = [
        {"image_id": s.image_id, "category_id": 1, "iscrowd": 0, "area": s.area, "bbox": s.bbox.tolist(),
         "keypoints": s.keypoints.reshape(-1).tolist(), "num_keypoints": int((s.keypoints[:, 2] > 0).sum())}
        for s in samples
    ] + [a for a in ignored if a["image_id"] in kept]
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in image_ids], "categories": [coco_category()],
                  "annotations": [{**a, "id": k + 1} for k, a in enumerate(annotations)]}
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


def dataset_for(model: torch.nn.Module, samples: list[PersonSample]) -> TopDownDataset:
    """Evaluation crops of ``samples`` as ``model`` was trained to see them (size, frame, normalisation)."""
    cfg = model.config
    return TopDownDataset(samples, cfg.input_hw, frame=cfg.frame, norm=cfg.norm)


def crop_areas(boxes: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """(P, 4) boxes -> (P,) areas of their crops (widened to the crop's aspect ratio, padded by 1.25): the
    person areas of OKS NMS, mmpose's ``bbox_scales`` product."""
    return np.array([np.prod(box_to_center_size(b, input_hw[1] / input_hw[0])[1]) for b in boxes])


def detection_queries(detections: list[Detection], paths: dict[int, Path]) -> list[PersonSample]:
    """One crop per detected box, on the image file ``paths`` gives for its ``image_id`` (keypoints
    unknown: zeros). A box on an image ``paths`` lacks is a ValueError naming it."""
    missing = next((d for d in detections if d.image_id not in paths), None)
    if missing is not None:
        raise ValueError(f"a detection is on image_id {missing.image_id}, which the annotation file has not")
    return [PersonSample(-1, d.image_id, paths[d.image_id], d.bbox, np.zeros((NUM_JOINTS, 3)),
                         float(d.bbox[2] * d.bbox[3])) for d in detections]


def scored_results(queries: list[PersonSample], preds: Predictions, box_scores: np.ndarray,
                   input_hw: tuple[int, int], keypoint_thr: float = KEYPOINT_THR, nms_thr: float = NMS_THR
                   ) -> list[dict]:
    """COCO keypoint results of the predicted persons, each scored by :func:`rescoring.rescore` from its
    box's score, after OKS NMS within each image (``nms_thr`` >= 1: none)."""
    results = coco_results(queries, preds)
    if not results:
        return results
    scores = rescore(box_scores[preds.indices], preds.scores, keypoint_thr)
    for r, score in zip(results, scores, strict=True):
        r["score"] = round(float(score), 5)
    if nms_thr >= 1:
        return results
    image_ids = np.array([r["image_id"] for r in results])
    areas = crop_areas(np.stack([queries[i].bbox for i in preds.indices]), input_hw)
    keep = nms_per_image(image_ids, preds.coords, scores, areas, nms_thr)
    return [results[i] for i in keep]


def evaluate(model: torch.nn.Module, samples: list[PersonSample], device: torch.device, batch_size: int = 64,
             workers: int = 0, detections: list[Detection] | None = None, flip: bool = False,
             keypoint_thr: float = KEYPOINT_THR, nms_thr: float = NMS_THR,
             ground_truth: CocoKeypoints | None = None) -> tuple[dict[str, float], list[dict]]:
    """All metrics for the ground truth ``samples`` plus the COCO results they were scored with.

    The crops are the ground-truth boxes (box score 1), or ``detections`` (PCK and pixel error then have no
    ground truth to pair with and are left out). ``ground_truth``: the annotation file ``samples`` came
    from; its images are where detections are cropped and which images are scored, and its ignored persons
    join pycocotools' ground truth (without it: the images of ``samples``, nothing ignored). ``flip``: the
    flip test. Persons on unreadable images are reported (``unreadable_images``) and left out of the ground
    truth rather than scored as misses of the model."""
    if ground_truth is None:
        paths, image_ids, ignored = {s.image_id: s.image_path for s in samples}, None, []
    else:
        paths = {i: im["path"] for i, im in ground_truth.images.items()}
        image_ids, ignored = set(ground_truth.images), ground_truth.ignored
    queries = samples if detections is None else detection_queries(detections, paths)
    box_scores = np.ones(len(queries)) if detections is None else np.array([d.score for d in detections])
    preds = predict(model, dataset_for(model, queries), device, batch_size, workers, flip=flip)
    results = scored_results(queries, preds, box_scores, model.config.input_hw, keypoint_thr, nms_thr)
    lost = {q.image_id for q in queries} - {queries[i].image_id for i in preds.indices}
    truth = [s for s in samples if s.image_id not in lost]
    if image_ids is not None:
        image_ids = image_ids - lost
    metrics = {**oks_ap(truth, results, ignored, image_ids), "persons": int(len(preds.indices)),
               "nms_suppressed": int(len(preds.indices) - len(results)),
               "unreadable_images": int(preds.unreadable)}
    if detections is None:
        metrics.update(pixel_metrics(samples, preds))
    return metrics, results


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, image_rgb: np.ndarray, boxes: list, device: torch.device,
                  flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (P, 17, 2) in image pixels and their scores (P, 17) for the persons in ``boxes``, each
    (x, y, w, h)."""
    cfg = model.config
    hw = cfg.input_hw
    mats = [crop_affine(*box_to_center_size(np.asarray(b, dtype=np.float64), hw[1] / hw[0]), hw,
                        frame=cfg.frame) for b in boxes]
    crops = torch.stack([to_tensor(warp(image_rgb, m, hw), cfg.norm) for m in mats]).to(device)
    model.eval()
    xy, scores = model.predict(crops, flip=flip)
    xy = xy.cpu().numpy().astype(np.float64)
    coords = np.stack([apply_affine(invert_affine(m), p) for m, p in zip(mats, xy, strict=True)])
    return coords, scores.cpu().numpy()


def predict_box(model: torch.nn.Module, image_rgb: np.ndarray, box: tuple[float, float, float, float],
                device: torch.device, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (17, 2) in image pixels and their scores (17,) for the person in ``box`` = (x, y, w, h)."""
    coords, scores = predict_boxes(model, image_rgb, [box], device, flip)
    return coords[0], scores[0]
