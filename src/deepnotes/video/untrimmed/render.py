"""Draw detections on frames: actor boxes with class and score, and a timeline of the detected segments."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230)]


def render_detections(frames: np.ndarray, detections: list[tuple[int, int, int, float]], boxes: np.ndarray,
                      classes: list[str], scale: int = 4, min_score: float = 0.0) -> np.ndarray:
    """Frames (T, H, W, 3) RGB -> annotated frames (T, scale*H + 12, scale*W, 3).

    Each frame inside a detection gets the actor box (when known) labelled "class score"; a strip under
    the frame shows every detection's extent as a coloured bar and the current time as a white tick.
    """
    t_total, h, w = frames.shape[:3]
    big_h, big_w = h * scale, w * scale
    strip = 12
    out = np.zeros((t_total, big_h + strip, big_w, 3), np.uint8)
    shown = [d for d in detections if d[3] >= min_score]
    for t in range(t_total):
        img = cv2.resize(frames[t], (big_w, big_h), interpolation=cv2.INTER_NEAREST)
        active = [d for d in shown if d[0] <= t < d[1]]
        if active:
            s, e, label, score = max(active, key=lambda d: d[3])
            colour = PALETTE[label % len(PALETTE)]
            text = f"{classes[label]} {score:.2f}"
            if not np.isnan(boxes[t, 0]):
                x1, y1, x2, y2 = (boxes[t] * scale).round().astype(int)
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
                cv2.putText(img, text, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1,
                            cv2.LINE_AA)
            else:
                cv2.putText(img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
        out[t, :big_h] = img
        for s, e, label, _ in shown:
            x0, x1 = int(s / t_total * big_w), max(int(e / t_total * big_w), int(s / t_total * big_w) + 1)
            out[t, big_h + 2:big_h + strip - 2, x0:x1] = PALETTE[label % len(PALETTE)]
        tick = int(t / max(t_total - 1, 1) * (big_w - 1))
        out[t, big_h:, tick] = 255
    return out


def write_frames(frames: np.ndarray, folder: str | Path, template: str = "frame_{:05d}.png") -> Path:
    """Write RGB frames as PNG images ``folder/frame_00001.png`` ... (1-based)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        cv2.imwrite(str(folder / template.format(t + 1)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder
