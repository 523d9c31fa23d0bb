"""``report.html``: camera verdicts, the views each camera skipped and why, per-view error bars, corner
coverage heat-maps, one view per camera drawn with its corner ids, a 3D plot of the rig, export notes.

Verdict rules (what makes a calibration trustworthy in practice): RMS below 0.5 px, at least 10 views,
and corners covering at least 60% of a 4x4 grid over the image (distortion is only constrained where
corners were seen).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.detect import Detection, draw_corners
from deepnotes.core.checkpoint import atomic_write_text

EXAMPLE_WIDTH = 480  # pixels: the drawn example view is shrunk to this width at most


def coverage(corners: list[np.ndarray], size: tuple[int, int], grid: int = 4) -> float:
    """Fraction of ``grid x grid`` image cells that contain at least one detected corner."""
    if not corners:
        return 0.0
    pts = np.concatenate(corners)
    w, h = size
    ix = np.clip((pts[:, 0] / w * grid).astype(int), 0, grid - 1)
    iy = np.clip((pts[:, 1] / h * grid).astype(int), 0, grid - 1)
    return len(set(zip(ix.tolist(), iy.tolist(), strict=False))) / grid**2


def verdict(rms: float, n_views: int, cover: float) -> str:
    problems = []
    if rms > 0.5:
        problems.append(f"RMS {rms:.2f} px > 0.5")
    if n_views < 10:
        problems.append(f"only {n_views} views (< 10)")
    if cover < 0.6:
        problems.append(f"corners cover {cover:.0%} of the image (< 60%)")
    return "OK: trust it" if not problems else "CHECK: " + "; ".join(problems)


def _pyplot():
    """matplotlib (off-screen), loaded when a report is drawn rather than with the package."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(png_b64: str) -> str:
    return f"<img src='data:image/png;base64,{png_b64}'>"


def _error_bars(per_view: dict[str, float], rejected: dict[str, float], name: str) -> str:
    fig, ax = _pyplot().subplots(figsize=(7, 2.4))
    names = list(per_view) + list(rejected)
    vals = list(per_view.values()) + list(rejected.values())
    ax.bar(range(len(vals)), vals, color=["tab:blue"] * len(per_view) + ["tab:red"] * len(rejected))
    ax.set_xticks(range(len(vals)), names, rotation=90, fontsize=6)
    ax.set_ylabel("RMS (px)")
    ax.set_title(f"{name}: per-view error (red: rejected)")
    return _png(fig)


def _heatmap(corners: list[np.ndarray], size: tuple[int, int], name: str) -> str:
    fig, ax = _pyplot().subplots(figsize=(4, 3))
    w, h = size
    pts = np.concatenate(corners) if corners else np.zeros((0, 2))
    ax.hist2d(pts[:, 0], pts[:, 1], bins=[16, 12], range=[[0, w], [0, h]], cmap="viridis")
    ax.invert_yaxis()
    ax.set_title(f"{name}: corner coverage")
    return _png(fig)


def _rig_plot(R: dict, T: dict, boards: dict) -> str:
    fig = _pyplot().figure(figsize=(5, 4))
    ax = fig.add_subplot(projection="3d")
    for name in R:
        centre = -R[name].T @ T[name].ravel()  # camera centre in the reference frame
        axis = R[name].T @ np.array([0, 0, 0.15])
        ax.scatter(*centre, color="tab:red")
        ax.quiver(*centre, *axis, color="tab:red")
        ax.text(*centre, name, fontsize=7)
    for _Rb, tb in boards.values():
        ax.scatter(*tb.ravel(), color="tab:blue", s=4)
    ax.set_title("cameras (red) and board poses (blue), reference frame")
    return _png(fig)


def example_view(det: Detection | None) -> str:
    """An ``<img>`` of a view with its corners and their ids drawn (JPEG, at most EXAMPLE_WIDTH wide), or a
    note when the image cannot be read."""
    gray = None if det is None else cv2.imread(det.path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return "<p>(no view to draw)</p>"
    vis = draw_corners(gray, np.asarray(det.corners), det.corner_ids())
    scale = min(1.0, EXAMPLE_WIDTH / vis.shape[1])
    if scale < 1:
        vis = cv2.resize(vis, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", vis, [cv2.IMWRITE_JPEG_QUALITY, 85])
    b64 = base64.b64encode(buf.tobytes()).decode()
    return (f"<p>{html.escape(Path(det.path).name)}: {len(det.corners)} corners with their ids</p>"
            f"<img src='data:image/jpeg;base64,{b64}'>")


def skipped_table(skipped: list[dict]) -> str:
    """The skipped views of a camera as an HTML table (file, reason)."""
    if not skipped:
        return "<p>No view skipped.</p>"
    rows = "".join(f"<tr><td>{html.escape(s['file'])}</td><td>{html.escape(s['reason'])}</td></tr>"
                   for s in skipped)
    head = "<tr><th>view</th><th>why it was skipped</th></tr>"
    return f"<table border='1' cellpadding='3'>{head}{rows}</table>"


def write_report(path: Path, cams: list[dict], rig_plots: list[tuple[str, dict, dict, dict]],
                 stereo: list[dict], notes: list[str] = ()) -> None:
    """``cams``: [{name, rms, per_view, rejected, corners (list of (N, 2)), image_size} and optionally
    skipped ([{file, reason}]), used and total (views), example (a Detection to draw)];
    ``rig_plots``: [(name, R, T, boards)]; ``notes``: export notes (e.g. Kalibr refits)."""
    parts = ["<html><head><meta charset='utf-8'><title>deepnotes calib report</title></head><body>",
             "<h1>Calibration report</h1><h2>Verdicts</h2><ul>"]
    for c in cams:
        cover = coverage(c["corners"], c["image_size"])
        v = verdict(c["rms"], len(c["per_view"]), cover)
        total = c.get("total", len(c["per_view"]) + len(c["rejected"]))
        used = c.get("used", len(c["per_view"]))
        parts.append(f"<li><b>{html.escape(c['name'])}</b>: {html.escape(v)} (RMS {c['rms']:.3f} px, "
                     f"{used} of {total} views used, {total - used} skipped, "
                     f"{len(c['rejected'])} rejected by the intrinsics step, coverage {cover:.0%})</li>")
    parts.append("</ul>")
    parts.extend(f"<p>{html.escape(n)}</p>" for n in notes)
    for s in stereo:
        parts.append(f"<p>stereo {html.escape(s['left'])}-{html.escape(s['right'])}: rms {s['rms']:.3f} px, "
                     f"rectified vertical error {s['rectified_vertical_error']:.3f} px</p>")
    for name, R, T, boards in rig_plots:
        parts.append(f"<h2>Rig {html.escape(name)}</h2>{_img(_rig_plot(R, T, boards))}")
    parts.append("<h2>Cameras</h2>")
    for c in cams:
        parts.append(f"<h3>{html.escape(c['name'])}</h3>")
        parts.append(_img(_error_bars(c["per_view"], c["rejected"], c["name"])))
        parts.append(_img(_heatmap(c["corners"], c["image_size"], c["name"])))
        if "example" in c:
            parts.append(example_view(c["example"]))
        if "skipped" in c:
            parts.append(f"<h4>{html.escape(c['name'])}: skipped views</h4>{skipped_table(c['skipped'])}")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
