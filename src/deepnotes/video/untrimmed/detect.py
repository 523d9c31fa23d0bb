"""Where, when, what on an untrimmed video with a trained recogniser run (``deepnotes video detect``).

The run must be a recogniser trained on windows whose classes include ``background`` (see
:func:`deepnotes.video.untrimmed.dataset.write_untrimmed_dataset`). Windows are sampled and transformed
exactly as the run's evaluation does (same segments, input size, modality), scored, localised
(:mod:`~deepnotes.video.untrimmed.localize`) and given actor boxes
(:mod:`~deepnotes.video.untrimmed.actors`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core import pick_device
from deepnotes.video.config import TrainConfig
from deepnotes.video.data.decode import read_video
from deepnotes.video.data.lists import VideoRecord
from deepnotes.video.data.pipeline import MODALITIES
from deepnotes.video.data.synth import write_mp4
from deepnotes.video.training import load_run, make_dataset
from deepnotes.video.untrimmed.actors import ACTOR_NET_FILE, actor_net_boxes, load_actor_net, motion_boxes
from deepnotes.video.untrimmed.localize import FrameDetection, LocalizeConfig, Scorer, detect_segments
from deepnotes.video.untrimmed.render import render_detections, write_frames
from deepnotes.video.untrimmed.results import detection_entry, results_json, write_json

BACKGROUND_NAME = "background"


class ArrayLoader:
    """Frame loader over in-memory windows: record ``i`` is ``windows[i]`` (T, H, W, 3) uint8."""

    def __init__(self, windows: list[np.ndarray]) -> None:
        self.windows = windows

    def _window(self, record: VideoRecord) -> np.ndarray:
        return self.windows[int(record.source)]

    def num_frames(self, record: VideoRecord) -> int:
        return len(self._window(record))

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        w = self._window(record)
        return w[np.clip(np.asarray(indices), 0, len(w) - 1)]


def run_scorer(model: torch.nn.Module, meta: dict[str, Any], device: torch.device) -> Scorer:
    """A window scorer (list of (T, H, W, 3) uint8 windows -> (n, K) softmax scores) for a trained run,
    sampling and transforming windows the way the run's evaluation does."""
    cfg = TrainConfig(model=meta["model"], train="", out="", workers=0, **meta["data"])

    def scorer(windows: list[np.ndarray]) -> np.ndarray:
        records = [VideoRecord(Path(f"window-{i}"), 0, len(w), str(i)) for i, w in enumerate(windows)]
        ds = make_dataset(cfg, records, False)
        ds.loader = window_loader(cfg, ArrayLoader(windows))
        clips = torch.stack([ds[i]["clip"] for i in range(len(ds))]).to(device)  # (n, V, C, T, H, W)
        n, v = clips.shape[:2]
        with torch.no_grad():
            probs = F.softmax(model(clips.flatten(0, 1)), 1).view(n, v, -1).mean(1)
        return probs.cpu().numpy()

    return scorer


def window_loader(cfg, frames_loader: ArrayLoader):
    """The loader a run's modality needs on top of in-memory frames (two-stream adds on-the-fly flow)."""
    return MODALITIES[getattr(cfg, "modality", "rgb")].on_frames(cfg, frames_loader)


def video_fps(path: str | Path, default: float = 10.0) -> float:
    """Frame rate from the container header (``default`` when it has none)."""
    try:
        import av

        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
        return float(rate) if rate else default
    except Exception:  # a header without a rate, or a frames folder: fall back
        return default


def detect(frames: np.ndarray, scorer: Scorer, classes: list[str], cfg: LocalizeConfig,
           boxes_fn: Callable[[np.ndarray], np.ndarray]) -> tuple[list[FrameDetection], np.ndarray]:
    """Detections [(start, end, label, score)] and per-frame actor boxes (T, 4) for one video."""
    if BACKGROUND_NAME not in classes:
        raise ValueError(f"the recogniser's classes {classes} have no {BACKGROUND_NAME!r} class; detection "
                         "needs a recogniser trained on windows with background (deepnotes video synth "
                         "untrimmed ...)")
    if len(frames) < cfg.window:
        raise ValueError(f"the video has {len(frames)} frames, shorter than one window of {cfg.window}; "
                         "lower --window")
    detections, _ = detect_segments(frames, scorer, classes.index(BACKGROUND_NAME), cfg)
    return detections, boxes_fn(frames)


def detect_run(run_dir: str | Path, video: str | Path, out: str | Path, render: str | Path | None = None,
               window: int = 16, stride: int = 4, boxes: str = "motion", device: str = "auto",
               min_score: float = 0.1, actor_model: str | Path | None = None) -> dict[str, Any]:
    """``deepnotes video detect``: write ActivityNet-style ``out`` and, when ``render`` is given, annotated
    frames (``render/frame_00001.png``...) and ``render/detections.mp4``. Returns the result dict.

    ``boxes``: ``motion`` (no training needed) or ``learned`` (an :class:`ActorNet` from ``actor_model``,
    default ``RUN/actor_net.safetensors``, written by ``deepnotes video train-actors``)."""
    if boxes not in ("motion", "learned"):
        raise ValueError(f"unknown box source {boxes!r}; valid: motion, learned")
    dev = pick_device(device)
    boxes_fn = motion_boxes
    if boxes == "learned":
        path = Path(actor_model) if actor_model else Path(run_dir) / ACTOR_NET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: train an actor net with `deepnotes video "
                                    f"train-actors DATASET --out {path}` or pass --actor-model")
        net = load_actor_net(path, dev)
        boxes_fn = lambda f: actor_net_boxes(net, f)  # noqa: E731
    model, meta = load_run(run_dir, dev)
    classes = list(meta["classes"])
    frames = read_video(video)
    fps = video_fps(video)
    cfg = LocalizeConfig(window=window, stride=stride)
    detections, actor_boxes = detect(frames, run_scorer(model, meta, dev), classes, cfg, boxes_fn)
    vid = Path(video).stem
    entries = [detection_entry(s, e, classes[c], sc, fps, actor_boxes) for s, e, c, sc in detections]
    result = results_json({vid: entries}, details=f"recogniser {meta['model']} from {run_dir}; {boxes} boxes")
    write_json(out, result)
    if render is not None:
        drawn = render_detections(frames, detections, actor_boxes, classes, min_score=min_score)
        write_frames(drawn, render)
        write_mp4(Path(render) / "detections.mp4", drawn, fps=max(1, round(fps)))
    return result
