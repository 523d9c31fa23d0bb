"""Where: per-frame actor boxes from motion.

The camera moves, so raw optical flow is large everywhere. The background dominates the frame, so its
motion is the median flow; subtracting it leaves the motion of things moving *relative to the scene*
(``compensate=True``). Pixels whose residual motion exceeds a threshold form a mask; the largest connected
component's bounding box is the actor. ``compensate=False`` thresholds the raw flow (the baseline the
measurement in the claims compares against).

The alternative is learned: :class:`ActorNet`, a tiny fully-convolutional segmenter trained on frames
with ground-truth boxes. Motion boxes need no labels and work on any video; the learned boxes need
training data of the same kind of actor. The localisation claim measures the frame-mAP of both.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from deepnotes.core.checkpoint import load_checkpoint, read_meta, save_checkpoint
from deepnotes.core.paths import resolve_inside
from deepnotes.optim import AdamW
from deepnotes.video.data.decode import read_video
from deepnotes.video.two_stream.flow import compute_flow


def boxes_from_flow(flow: np.ndarray, compensate: bool = True, min_motion: float = 0.5,
                    rel_motion: float = 0.35, min_area: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Actor box per flow field.

    Args:
        flow: (N, H, W, 2) flow fields in pixels.
        compensate: subtract the median (camera) flow first.
        min_motion: residual motion (pixels/frame) a pixel needs to count as moving, at least;
        rel_motion: ... and at least this fraction of the frame's largest residual motion.
        min_area: components smaller than this (pixels) are noise.
    Returns boxes (N, 4) x1, y1, x2, y2 (NaN where nothing moves) and a strength (N,): the mean residual
    motion inside the mask.
    """
    n = len(flow)
    boxes = np.full((n, 4), np.nan, np.float32)
    strength = np.zeros(n, np.float32)
    for i, f in enumerate(flow):
        if compensate:
            f = f - np.median(f.reshape(-1, 2), 0)
        mag = np.linalg.norm(f, axis=-1)
        thr = max(min_motion, rel_motion * float(np.percentile(mag, 99.5)))
        mask = (mag > thr).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count <= 1:
            continue
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h, area = stats[best]
        if area < min_area:
            continue
        boxes[i] = (x, y, x + w, y + h)
        strength[i] = float(mag[labels == best].mean())
    return boxes, strength


def motion_boxes(frames: np.ndarray, method: str = "dis", compensate: bool = True,
                 flow: np.ndarray | None = None, smooth: int = 2) -> np.ndarray:
    """Actor box for every frame of a video (T, H, W, 3) -> (T, 4), NaN where no actor moves.

    Frame t uses the flow from t to t+1 (the last frame reuses the previous field); boxes are then
    smoothed by a per-coordinate median over +-``smooth`` frames (ignoring NaN), which removes flicker.
    """
    if flow is None:
        flow = compute_flow(frames, method)
    per_field, _ = boxes_from_flow(flow, compensate)
    boxes = np.concatenate([per_field, per_field[-1:]])
    if smooth > 0:
        padded = np.pad(boxes, ((smooth, smooth), (0, 0)), constant_values=np.nan)
        stack = np.stack([padded[k:k + len(boxes)] for k in range(2 * smooth + 1)])
        valid = ~np.isnan(boxes[:, 0])
        with np.errstate(all="ignore"), _quiet():
            smoothed = np.nanmedian(stack, 0)
        boxes = np.where(valid[:, None], smoothed, np.nan)
    return boxes.astype(np.float32)


class _quiet:
    """Silence numpy's all-NaN-slice warning inside nanmedian (NaN is the intended result there)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


class ActorNet(torch.nn.Module):
    """A tiny fully-convolutional actor segmenter: (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) logits of
    "this pixel belongs to an actor". Two 3x3 convs at full resolution, two at half resolution (a
    ~16-pixel receptive field, enough to tell a compact actor from texture), upsampled back; the box is
    the extent of the largest predicted component. (Plain convs: dilated ones are slow on CPU.)"""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        nn = torch.nn
        self.full = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.coarse = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, width, 3, padding=1),
                                    nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
                                    nn.ReLU(inplace=True))
        self.head = nn.Conv2d(2 * width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.full(x)
        g = torch.nn.functional.interpolate(self.coarse(f), size=f.shape[-2:], mode="nearest")
        return self.head(torch.cat([f, g], 1))


def box_masks(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, 4) boxes (NaN = none) -> (T, H, W) float masks, 1 inside each box."""
    masks = np.zeros((len(boxes), *size), np.float32)
    for t, b in enumerate(boxes):
        if not np.isnan(b[0]):
            masks[t, int(b[1]):int(b[3]), int(b[0]):int(b[2])] = 1
    return masks


def train_actor_net(frames: np.ndarray, boxes: np.ndarray, steps: int = 120, batch_size: int = 16,
                    crop: int = 32, lr: float = 3e-3, seed: int = 0,
                    device: str | torch.device = "cpu") -> ActorNet:
    """Fit :class:`ActorNet` on frames (N, H, W, 3) uint8 with actor boxes (N, 4) (NaN: no actor).

    Steps train on random ``crop`` x ``crop`` patches (the net is fully convolutional, so it then runs on
    whole frames); a patch that shows part of an actor teaches the same thing as the whole frame, cheaper.
    """
    torch.manual_seed(seed)
    net = ActorNet().to(device)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(box_masks(boxes, frames.shape[1:3]))[:, None]
    h, w = frames.shape[1:3]
    crop = min(crop, h, w)
    opt = AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    frac = float(y.mean())
    pos_weight = torch.tensor(min(max((1 - frac) / max(frac, 1e-3), 1.0), 20.0), device=device)
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch_size)
        ys, xs = rng.integers(0, h - crop + 1, batch_size), rng.integers(0, w - crop + 1, batch_size)
        xb = torch.stack([x[i, :, a:a + crop, b:b + crop] for i, a, b in zip(idx, ys, xs, strict=True)])
        yb = torch.stack([y[i, :, a:a + crop, b:b + crop] for i, a, b in zip(idx, ys, xs, strict=True)])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb.to(device)), yb.to(device),
                                                                    pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def actor_net_boxes(net: ActorNet, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Boxes (T, 4) of the largest predicted actor component per frame (NaN where none)."""
    device = next(net.parameters()).device
    out = np.full((len(frames), 4), np.nan, np.float32)
    for i in range(0, len(frames), batch_size):
        x = torch.from_numpy(frames[i:i + batch_size]).permute(0, 3, 1, 2).float().div(255).to(device)
        masks = (net(x)[:, 0] > 0).cpu().numpy().astype(np.uint8)
        for k, m in enumerate(masks):
            count, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            if count > 1:
                best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
                x0, y0, w, h, _ = stats[best]
                out[i + k] = (x0, y0, x0 + w, y0 + h)
    return out


ACTOR_NET_FILE = "actor_net.safetensors"


def save_actor_net(net: ActorNet, path: str | Path) -> Path:
    """Write the net atomically as a deepnotes checkpoint (safetensors + JSON header)."""
    meta = {"kind": "actor_net", "width": net.head.in_channels // 2}
    return save_checkpoint(path, {"model": net.state_dict()}, meta)


def load_actor_net(path: str | Path, device: str | torch.device = "cpu") -> ActorNet:
    meta = read_meta(path)
    if meta.get("kind") != "actor_net":
        kind = meta.get("kind") or meta.get("model")
        raise ValueError(f"{path} is a deepnotes checkpoint of {kind!r}, not an actor net; train one with "
                         "`deepnotes video train-actors`")
    state, _ = load_checkpoint(path, device=device)
    net = ActorNet(width=int(meta["width"])).to(device)
    net.load_state_dict(state["model"])
    return net.eval()


def annotated_frames(gt_json: str | Path, videos_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frames (N, H, W, 3) and boxes (N, 4) of every annotated actor box in an ActivityNet-style ground truth
    whose annotations carry ``boxes`` ``[[frame, x1, y1, x2, y2], ...]`` (as ``synth untrimmed`` writes),
    reading ``videos_dir/<video id>.mp4``. Videos that cannot be read are skipped and listed."""
    try:
        database = json.loads(Path(gt_json).read_text())["database"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{gt_json}: not an ActivityNet-style ground truth with a 'database' "
                         f"({exc})") from exc
    frames, boxes, skipped = [], [], []
    for vid, entry in database.items():
        rows = [b for ann in entry.get("annotations", []) for b in ann.get("boxes", [])]
        if not rows:
            continue
        try:
            video = read_video(resolve_inside(videos_dir, f"{vid}.mp4"))
        except Exception as exc:  # one unreadable video must not stop the job
            skipped.append(f"{vid}: {exc}")
            continue
        for f, *box in rows:
            if 0 <= int(f) < len(video):
                frames.append(video[int(f)])
                boxes.append(box)
    if not frames:
        raise ValueError(f"{gt_json}: no annotated actor box could be read from {videos_dir}")
    return np.stack(frames), np.asarray(boxes, np.float32), skipped
