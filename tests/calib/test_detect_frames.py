"""Detection (adaptive window, orientation, bad images), mosaic/video splitting, intrinsics, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepnotes.calib.camera_model import board_points
from deepnotes.calib.config import Board, CalibError, Source, load_config
from deepnotes.calib.detect import canonical_order, detect_camera, detect_image
from deepnotes.calib.frames import _Dedup, crop_rects, iter_video, split_mosaic
from deepnotes.calib.intrinsics import Views, calibrate_intrinsics
from deepnotes.calib.pipeline import step_detect, step_intrinsics, step_split, usable_views
from deepnotes.calib.synthetic import _background, render_view, synthetic_rig, true_corners


@pytest.fixture(scope="session")
def far_board(tmp_path_factory):
    """One 640x480 view of a small (far) board, its path and its true corners."""
    rig = synthetic_rig(1, 1, (640, 480), seed=0, depth=(2.4, 2.4))
    cam, pose = rig.cameras[0], rig.board_poses[0]
    background = _background(0, cam.image_size, 0)
    img = render_view(cam, rig.board, pose, background, 0.7, 2.0, np.random.default_rng(0), 2)
    path = tmp_path_factory.mktemp("far") / "far.png"
    cv2.imwrite(str(path), img)
    uv, ok = true_corners(cam, rig.board, pose)
    assert ok
    return path, uv, rig.board


def test_adaptive_window_beats_fixed_11_on_small_board(far_board):
    path, uv, b = far_board
    fixed = detect_image(str(path), "f", b.cols, b.rows, "classic", 11)
    adaptive = detect_image(str(path), "f", b.cols, b.rows, "classic", "adaptive")
    assert fixed.found and adaptive.found
    e_fixed = np.sqrt(np.mean(np.sum((np.array(fixed.corners) - uv) ** 2, axis=1)))
    e_adapt = np.sqrt(np.mean(np.sum((np.array(adaptive.corners) - uv) ** 2, axis=1)))
    assert e_adapt < 0.3 and e_adapt < 0.5 * e_fixed
    assert 2 <= adaptive.window < 11


def test_sb_detector_and_reversed_order_is_fixed(far_board):
    path, uv, b = far_board
    sb = detect_image(str(path), "f", b.cols, b.rows, "sb")
    assert sb.found and np.abs(np.array(sb.corners) - uv).max() < 1.0
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_allclose(canonical_order(gray, uv[::-1].copy(), b.cols, b.rows), uv)


def test_wrong_board_size_and_unreadable_image_are_reported(far_board, tmp_path):
    path, _, b = far_board
    wrong = detect_image(str(path), "f", b.cols + 2, b.rows, "classic")
    assert not wrong.found and "corners seen" in wrong.reason
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    frames = [{"frame": "x", "path": str(bad)}, {"frame": "y", "path": str(path)}]
    dets = detect_camera(frames, b.cols, b.rows, "classic", "adaptive", 0, cache=tmp_path / "cache.json",
                         workers=2)
    assert [d.found for d in dets] == [False, True] and dets[0].reason == "unreadable image"
    again = detect_camera([{"frame": "y", "path": str(path)}], b.cols, b.rows, "classic", "adaptive", 0,
                          cache=tmp_path / "cache.json")
    assert again[0].corners == dets[1].corners  # served from the cache


def test_mosaic_split_and_crops(tmp_path):
    img = np.arange(40 * 60, dtype=np.uint8).reshape(40, 60)
    src = Source(type="mosaic", path=tmp_path, cameras=["a", "b", "c", "d"], layout=[2, 2])
    views = split_mosaic(img, crop_rects(src, 60, 40))
    assert [v.shape for v in views] == [(20, 30)] * 4 and views[3][0, 0] == img[20, 30]
    src.crops = [[0, 0, 10, 10], [50, 30, 20, 20]]
    with pytest.raises(ValueError, match="outside the 60x40 frame"):
        crop_rects(src, 60, 40)


def test_video_stride_and_duplicates(tmp_path):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    for f in [frames[0]] * 3 + [frames[1]] * 3 + [frames[2]] * 2:
        writer.write(f)
    writer.release()
    got = list(iter_video(path, stride=1))
    assert len(got) == 8
    dedup = _Dedup(2.0)
    kept = [fid for fid, img in got if dedup.keep(img)]
    assert kept == ["f000000", "f000003", "f000006"] and dedup.dropped == 5
    assert [fid for fid, _ in iter_video(path, stride=3)] == ["f000000", "f000003", "f000006"]
    with pytest.raises(ValueError, match="cannot open this video"):
        list(iter_video(tmp_path / "missing.mp4", 1))


def test_outlier_view_is_rejected(small_rig):
    cam = small_rig.cameras[0]
    b = small_rig.board
    obj = board_points(b.cols, b.rows, b.square_size)
    rng = np.random.default_rng(0)
    frames, img = [], []
    for k, pose in enumerate(small_rig.board_poses):
        uv, ok = true_corners(cam, b, pose)
        if ok:
            frames.append(f"f{k}")
            img.append(uv + rng.normal(0, 0.1, uv.shape))
    img[2] = img[2] + rng.normal(0, 3.0, img[2].shape)  # a badly detected view
    res = calibrate_intrinsics("cam0", Views(frames, [obj] * len(frames), img, cam.image_size))
    assert frames[2] in res.rejected and frames[2] not in res.per_view
    assert res.rms < 0.2 and abs(res.K[0, 0] - cam.K[0, 0]) / cam.K[0, 0] < 0.01
    assert set(res.std) >= {"fx", "fy", "cx", "cy", "k1"}


def test_fisheye_intrinsics(tmp_path):
    rig = synthetic_rig(1, 12, (640, 480), seed=1, model="fisheye", depth=(0.6, 1.2))
    cam, b = rig.cameras[0], rig.board
    obj = board_points(b.cols, b.rows, b.square_size)
    uvs = [uv for uv, ok in (true_corners(cam, b, p) for p in rig.board_poses) if ok]
    views = Views([str(i) for i in range(len(uvs))], [obj] * len(uvs), uvs, cam.image_size)
    res = calibrate_intrinsics("fe", views, model="fisheye")
    assert res.rms < 0.01 and abs(res.K[0, 0] - cam.K[0, 0]) / cam.K[0, 0] < 1e-3


def test_too_few_views_and_wrong_board_are_clear_errors(project, tmp_path):
    cfg = load_config(project)
    cfg.board = Board(cols=cfg.board.cols + 1, rows=cfg.board.rows, square_size=cfg.board.square_size)
    step_split(cfg, tmp_path)
    step_detect(cfg, tmp_path)
    with pytest.raises(CalibError, match=r"only 0 of 12 images have a usable 8x5 board.*corners seen"):
        step_intrinsics(cfg, tmp_path)


def test_mixed_image_sizes_are_an_error(project, tmp_path):
    from deepnotes.calib.detect import Detection

    cfg = load_config(project)
    dets = [Detection(f"f{i}", f"/x/{i}.png", True, (320, 240) if i else (640, 480), [[0.0, 0.0]])
            for i in range(6)]
    with pytest.raises(CalibError, match="mixed image sizes"):
        usable_views(cfg, "cam0", dets)
