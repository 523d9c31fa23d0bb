"""Stacked optical flow for the temporal stream: a frame loader for the shared ``VideoDataset`` plus
transforms that know what flow is.

The recognition pipeline samples frame indices (TSN segments with ``new_length`` consecutive frames each)
and calls a loader for the pixels. :class:`FlowLoader` plugs flow folders (as ``deepnotes video flow``
writes them) into it, returning the stored uint8 fields as a 2-channel "frame" (x, y). The dataset turns
them into a (2, S*L, H, W) clip in [0, 1]; :func:`stack_flow` regroups that into S stacks of 2L channels
ordered ``x1, y1, x2, y2, ...`` (the order mmaction2 and the two-stream paper use).

Flow is a displacement field, so geometric transforms must change its values too:

* horizontal flip mirrors the image *and* negates the x component (a point moving right now moves left);
* resizing by factors (sx, sy) scales the x and y displacements by sx and sy (mmaction2 skips this).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.video.data.dataset import VideoDataset
from deepnotes.video.data.decode import VideoReadError
from deepnotes.video.data.lists import ListError, VideoRecord, read_list
from deepnotes.video.data.sampling import ClipSampler
from deepnotes.video.data.transforms import RGB_SCALES, Compose, HorizontalFlip, Normalize
from deepnotes.video.two_stream.flow import (
    DEFAULT_BOUND,
    flow_info,
    make_flow_fn,
    quantize_flow,
    read_flow_quantized,
)

log = logging.getLogger("deepnotes.video")


class FlowLoader:
    """Loader of flow folders for :class:`~deepnotes.video.data.dataset.VideoDataset`.

    ``loader(record, indices)`` -> (len(indices), H, W, 2) uint8 (quantised x, y); a broken, missing or
    mismatched flow folder raises ``VideoReadError``, so training skips and counts it like a broken video.
    ``bound`` must equal the one the folders were extracted with (the transforms undo the quantisation).
    """

    def __init__(self, bound: float = DEFAULT_BOUND, fmt: str | None = None) -> None:
        self.bound, self.fmt = bound, fmt

    def num_frames(self, record: VideoRecord) -> int:
        try:
            info = flow_info(record.path)
        except (FileNotFoundError, ValueError) as exc:
            raise VideoReadError(record.path, str(exc)) from None
        n = int(info["frames"])
        if record.total_frames is not None and n != record.total_frames:
            raise VideoReadError(record.path, f"{record.source} lists {record.total_frames} flow frames, "
                                              f"the folder holds {n}")
        if abs(float(info["bound"]) - self.bound) > 1e-6:
            raise VideoReadError(record.path, f"flow was stored with bound {info['bound']}, "
                                              f"the dataset expects {self.bound}")
        return n

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        try:
            q, _ = read_flow_quantized(record.path, [int(i) for i in indices], self.fmt)
        except (FileNotFoundError, ValueError) as exc:
            raise VideoReadError(record.path, str(exc)) from None
        return q


def resize_flow(clip: torch.Tensor, size: tuple[int, int], flow_from: int = 0) -> torch.Tensor:
    """Resize (T, C, H, W) to ``size`` (h, w). Channels ``flow_from:`` are flow (x, y pairs) in pixels: x is
    scaled by w/W and y by h/H so that displacements stay true at the new size; earlier channels are RGB."""
    h, w = size
    H, W = clip.shape[-2:]
    if (h, w) == (H, W):
        return clip
    out = F.interpolate(clip, size=(h, w), mode="bilinear", align_corners=False)
    out[:, flow_from::2] *= w / W
    out[:, flow_from + 1::2] *= h / H
    return out


class ToPixels:
    """Flow channels ``flow_from:`` from [0, 1] (stored uint8 / 255) to pixels in [-bound, bound]."""

    def __init__(self, bound: float = DEFAULT_BOUND, flow_from: int = 0) -> None:
        self.bound, self.flow_from = bound, flow_from

    def __call__(self, clip, label, rng):
        clip = clip.clone()
        clip[:, self.flow_from:] = clip[:, self.flow_from:] * (2 * self.bound) - self.bound
        return clip, label


class FlowScaleCrop:
    """Training crop shared by every channel: resize the short side to 8/7 of ``size``, take a square of
    ``scale`` x the short side (scale from ``scales``) at a random place, resize it to ``size``; flow
    values follow every resize."""

    def __init__(self, size: int, flow_from: int = 0,
                 scales: tuple[float, ...] = RGB_SCALES) -> None:
        self.size, self.flow_from, self.scales = size, flow_from, scales

    def __call__(self, clip, label, rng):
        clip = _short_side(clip, round(self.size * 8 / 7), self.flow_from)
        H, W = clip.shape[-2:]
        side = max(1, int(min(H, W) * self.scales[int(rng.integers(len(self.scales)))]))
        y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        return resize_flow(clip[..., y:y + side, x:x + side], (self.size, self.size), self.flow_from), label


class FlowCenterCrop:
    """Test crop: short side to 8/7 of ``size``, centre square of ``size``; output (1, T, C, size, size)
    (one view, as the shared test pipeline returns)."""

    def __init__(self, size: int, flow_from: int = 0, view: bool = True) -> None:
        self.size, self.flow_from, self.view = size, flow_from, view

    def __call__(self, clip, label, rng):
        clip = _short_side(clip, round(self.size * 8 / 7), self.flow_from)
        H, W = clip.shape[-2:]
        s = min(self.size, H, W)
        y, x = (H - s) // 2, (W - s) // 2
        clip = clip[..., y:y + s, x:x + s]
        return (clip.unsqueeze(0) if self.view else clip), label


def _short_side(clip: torch.Tensor, side: int, flow_from: int) -> torch.Tensor:
    H, W = clip.shape[-2:]
    scale = side / min(H, W)
    return resize_flow(clip, (max(1, round(H * scale)), max(1, round(W * scale))), flow_from)


class FlowNormalize:
    """RGB channels (before ``flow_from``) by ImageNet mean/std; flow channels divided by ``std`` pixels so
    that typical flow is O(1)."""

    def __init__(self, flow_from: int = 0, std: float = 4.0) -> None:
        self.flow_from, self.std = flow_from, std
        self.rgb = Normalize()

    def __call__(self, clip, label, rng):
        flow = clip[..., self.flow_from:, :, :] / self.std
        if self.flow_from == 0:
            return flow, label
        rgb, _ = self.rgb(clip[..., :self.flow_from, :, :], label, rng)
        return torch.cat([rgb, flow], -3), label


def flow_train_transform(input_size: int, bound: float = DEFAULT_BOUND, flip: bool = True,
                         label_map: dict[int, int] | None = None, std: float = 4.0, flow_from: int = 0,
                         channels: int = 2, crop: str = "multiscale",
                         scales: tuple[float, ...] = RGB_SCALES) -> Compose:
    """Training pipeline for clips (T, C, H, W) whose channels ``flow_from:`` are flow x, y pairs (stored
    uint8 / 255) and earlier ones RGB in [0, 1]: pixels, shared crop (``multiscale``: random scale crop of
    one of ``scales`` x the short side; ``center``: the test crop), flip that negates every x channel,
    normalise. ``channels`` is C."""
    if crop not in ("multiscale", "center"):
        raise ValueError(f"--crop {crop}: clips with optical flow train with --crop multiscale or center")
    if crop == "multiscale":
        cropper = FlowScaleCrop(input_size, flow_from, tuple(scales))
    else:
        cropper = FlowCenterCrop(input_size, flow_from, view=False)
    steps = [ToPixels(bound, flow_from), cropper]
    if flip:  # a mirrored clip moves the other way: negate the x components
        steps.append(HorizontalFlip(0.5, label_map, negate_channels=tuple(range(flow_from, channels, 2))))
    return Compose([*steps, FlowNormalize(flow_from, std)])


def flow_test_transform(input_size: int, bound: float = DEFAULT_BOUND, std: float = 4.0,
                        flow_from: int = 0) -> Compose:
    """Test pipeline: pixels, centre crop (one view), normalise. Output (1, T, C, size, size)."""
    return Compose([ToPixels(bound, flow_from), FlowCenterCrop(input_size, flow_from),
                    FlowNormalize(flow_from, std)])


def flow_dataset(list_file: Path, root: Path | None = None, num_segments: int = 3, new_length: int = 5,
                 input_size: int = 112, train: bool = True, flip: bool = True,
                 label_map: dict[int, int] | None = None, bound: float = DEFAULT_BOUND,
                 fmt: str | None = None, num_classes: int | None = None, seed: int = 0) -> VideoDataset:
    """A ``VideoDataset`` of stacked flow from a flow raw-frame list (``flow_dir num_flow_frames label``).

    Items are ``{"clip": (2, S*L, size, size), "label", "index"}`` (training; testing adds a view axis);
    :func:`stack_flow` makes the (S, 2L, size, size) stacks the temporal stream takes.
    """
    records = read_list(list_file, root, num_classes=num_classes, kind="rawframes", check_files=False)
    sampler = ClipSampler("segments", num_frames=num_segments, new_length=new_length)
    transform = (flow_train_transform(input_size, bound, flip, label_map) if train
                 else flow_test_transform(input_size, bound))
    return VideoDataset(records, sampler, transform, train, loader=FlowLoader(bound, fmt), seed=seed)


def stack_flow(clip: torch.Tensor, new_length: int) -> torch.Tensor:
    """(..., 2, S*L, H, W) flow clip -> (..., S, 2L, H, W) stacks, channels x1, y1, x2, y2, ..."""
    *lead, c, t, h, w = clip.shape
    if c != 2 or t % new_length:
        raise ValueError(f"expected a (..., 2, S*{new_length}, H, W) flow clip, got {tuple(clip.shape)}")
    s = t // new_length
    x = clip.reshape(*lead, 2, s, new_length, h, w).movedim(-5, -3)  # (..., S, L, 2, H, W)
    return x.reshape(*lead, s, 2 * new_length, h, w)


def flow_window(indices: np.ndarray, new_length: int, num_flow: int) -> np.ndarray:
    """Flow fields around each RGB frame: i - L//2 ... i - L//2 + L - 1, clamped to [0, num_flow)
    -> (T*L,)."""
    idx = np.asarray(indices)[:, None] - new_length // 2 + np.arange(new_length)[None]
    return np.clip(idx, 0, num_flow - 1).reshape(-1)


class TwoStreamLoader:
    """Loader for two-stream clips: RGB frame ``i`` and the ``new_length`` flow fields centred on it, as one
    (T, H, W, 3 + 2L) uint8 array (channels R, G, B, x1, y1, ..., xL, yL).

    Flow comes from the stored flow folder paired with the video (``pairs``: video path -> flow record, see
    :func:`pair_flow_lists`) or, for videos without one (eval/predict/detect on new videos), is computed on
    the fly with ``method`` from the decoded frames.
    """

    def __init__(self, rgb: Callable, pairs: dict[str, VideoRecord] | None = None, new_length: int = 5,
                 bound: float = DEFAULT_BOUND, method: str = "dis", fmt: str | None = None) -> None:
        self.rgb, self.pairs, self.new_length = rgb, dict(pairs or {}), new_length
        self.flow = FlowLoader(bound, fmt)
        self.bound, self.method = bound, method

    def num_frames(self, record: VideoRecord) -> int:
        return self.rgb.num_frames(record)

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        rgb = self.rgb(record, indices)  # (T, H, W, 3)
        flow_record = self.pairs.get(str(record.path))
        if flow_record is not None:
            n = self.flow.num_frames(flow_record)
            q = self.flow(flow_record, flow_window(indices, self.new_length, n))
        else:
            total = self.rgb.num_frames(record)
            if total < 2:
                raise VideoReadError(record.path, f"{total} frame(s); optical flow needs at least 2")
            idx = flow_window(indices, self.new_length, total - 1)
            frames = self.rgb(record, np.concatenate([idx, idx + 1]))
            fn = make_flow_fn(self.method)
            grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
            fields = np.stack([fn(grey[k], grey[k + len(idx)]) for k in range(len(idx))])
            q = quantize_flow(fields, self.bound)
        t, h, w = rgb.shape[:3]
        if q.shape[1:3] != (h, w):
            raise VideoReadError(record.path, f"flow is {q.shape[2]}x{q.shape[1]}, frames are {w}x{h}")
        L = self.new_length  # (T*L, H, W, 2) -> (T, H, W, 2L) channels x1, y1, ..., xL, yL
        flow = q.reshape(t, L, h, w, 2).transpose(0, 2, 3, 1, 4).reshape(t, h, w, 2 * L)
        return np.concatenate([rgb, flow], -1)


def pair_flow_lists(rgb_records: list[VideoRecord],
                    flow_records: list[VideoRecord]) -> dict[str, VideoRecord]:
    """Pair an RGB list with its flow list line by line (same length, same video name, same label).

    The flow folder of ``videos/a.mp4`` is named ``videos/a`` (what ``deepnotes video flow`` writes), so names
    are compared without extension. A mismatch is a ``ListError`` naming the first differing lines.
    """
    if len(rgb_records) != len(flow_records):
        rgb_file, flow_file = (r[0].source.rsplit(":", 1)[0] for r in (rgb_records, flow_records))
        raise ListError(f"the RGB list has {len(rgb_records)} samples ({rgb_file}) but the flow list has "
                        f"{len(flow_records)} ({flow_file}); extract flow for every video (`deepnotes video "
                        "flow`) and use its flow_list.txt")
    for r, f in zip(rgb_records, flow_records, strict=True):
        if r.path.with_suffix("").name != f.path.name or r.label != f.label:
            raise ListError(f"first mismatch: {r.source} is {r.path.name} (label {r.label}) but {f.source} "
                            f"is {f.path.name} (label {f.label}); the two lists must list the same videos in "
                            "order")
    return {str(r.path): f for r, f in zip(rgb_records, flow_records, strict=True)}


def two_stream_loader(cfg, rgb: Callable) -> TwoStreamLoader:
    """The loader of a two-stream training config (``deepnotes.video.config.TrainConfig``): RGB from ``rgb``,
    flow from ``cfg.flow_train`` / ``cfg.flow_val`` paired with ``cfg.train`` / ``cfg.val`` line by line."""
    pairs: dict[str, VideoRecord] = {}
    for rgb_list, flow_list in ((cfg.train, cfg.flow_train), (cfg.val, cfg.flow_val)):
        if rgb_list and flow_list:
            rgb_records = read_list(rgb_list, cfg.root, kind=cfg.list_format)
            flow_records = read_list(flow_list, None, kind="rawframes", check_files=False)
            pairs.update(pair_flow_lists(rgb_records, flow_records))
    _warn_on_method_mismatch(pairs, cfg.flow_method)
    return TwoStreamLoader(rgb, pairs, cfg.new_length, cfg.flow_bound, cfg.flow_method)


def _warn_on_method_mismatch(pairs: dict[str, VideoRecord], method: str) -> None:
    """Stored flow and the flow computed on the fly for new videos (eval, predict, detect) should come from
    one method: a temporal stream trained on TV-L1 fields sees other statistics in DIS fields."""
    for record in pairs.values():
        try:
            stored = flow_info(record.path).get("method")
        except (FileNotFoundError, ValueError):
            continue  # an unfinished folder is reported when its sample is loaded
        if stored and stored != method:
            log.warning("stored flow (%s) was computed with %r but --flow-method is %r: videos without "
                        "stored flow (eval/predict/detect on new videos) get %r flow; pass --flow-method %s "
                        "to match",
                        record.path, stored, method, method, stored)
        return


def two_stream_transform(cfg, train: bool, crops: int = 1,
                         label_map: dict[int, int] | None = None) -> Compose:
    """Transforms for (T, 3 + 2L, H, W) two-stream clips: one crop and flip shared by RGB and flow."""
    if crops != 1:
        raise ValueError("two-stream evaluation supports one centre crop per clip (--crops 1)")
    if train:
        return flow_train_transform(cfg.input_size, cfg.flow_bound, cfg.flip, label_map, flow_from=3,
                                    channels=3 + 2 * cfg.new_length, crop=cfg.crop, scales=cfg.crop_scales)
    return flow_test_transform(cfg.input_size, cfg.flow_bound, flow_from=3)
