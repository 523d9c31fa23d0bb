"""ChArUco boards: the config section, the board as OpenCV draws it, rendered partial views and detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from deepnotes.calib.boards import charuco_board, marker_cells, object_points
from deepnotes.calib.config import TEMPLATE, Board, ConfigError, parse_config
from deepnotes.calib.detect import detect_charuco, detect_image
from deepnotes.calib.synthetic import (
    CHARUCO_BOARD,
    PARTIAL_CHESSBOARD,
    _background,
    project_corners,
    render_view,
    synthetic_rig,
    visible_fraction,
)

from .conftest import TINY_CHARUCO

CHARUCO = {"type": "charuco", "cols": 10, "rows": 7, "square_size": 0.04, "marker_size": 0.03,
           "dictionary": "DICT_5X5_100"}


def _raw(board: dict) -> dict:
    raw = yaml.safe_load(TEMPLATE)
    raw["board"] = board
    return raw


def test_charuco_config_parses_and_counts_squares():
    board = parse_config(_raw(dict(CHARUCO)), check_files=False).board
    assert board.charuco and board.corner_grid == (9, 6) and board.dictionary == "DICT_5X5_100"
    # the corner table is OpenCV's own: (cols - 1) x (rows - 1) inner corners, corner 0 at (s, s)
    np.testing.assert_allclose(object_points(board), charuco_board(board).getChessboardCorners())
    assert len(object_points(board)) == 54
    assert parse_config(yaml.safe_load(TEMPLATE), check_files=False).board.type == "chessboard"


@pytest.mark.parametrize("edit, message", [
    ({"type": "aruco"}, "board.type: 'aruco' is not one of ['chessboard', 'charuco']"),
    ({"marker_size": None}, "board.marker_size is missing"),
    ({"marker_size": 0.04}, "board.marker_size must lie between 0 and square_size"),
    ({"marker_size": "big"}, "board.marker_size must be a number"),
    ({"dictionary": "DICT_5X5_10"}, "board.dictionary: 'DICT_5X5_10' is not an OpenCV ArUco dictionary"),
    ({"dictionary": "DICT_4X4_50", "cols": 12, "rows": 9},
     "DICT_4X4_50 has 50 markers, a 12x9 board needs 54"),
    ({"cols": 3, "rows": 2}, "board.cols and board.rows: a ChArUco board of 3x2 squares has 2 inner corners"),
    ({"square_size": 0}, "board.square_size must be > 0"),
])
def test_bad_charuco_values_name_the_key(edit, message):
    board = {**CHARUCO, **edit}
    with pytest.raises(ConfigError) as exc:
        parse_config(_raw({k: v for k, v in board.items() if v is not None}), src="calib.yaml",
                     check_files=False)
    assert message in str(exc.value)


def test_marker_keys_on_a_chessboard_are_refused():
    raw = yaml.safe_load(TEMPLATE)
    raw["board"]["dictionary"] = "DICT_5X5_100"
    with pytest.raises(ConfigError, match="board.dictionary belongs to a ChArUco board; add `type: charuco`"):
        parse_config(raw, check_files=False)
    raw = yaml.safe_load(TEMPLATE)
    raw["detect"]["search"] = "quick"
    with pytest.raises(ConfigError, match=r"detect.search: 'quick' not in \['fast', 'thorough'\]"):
        parse_config(raw, check_files=False)


def test_marker_cells_are_the_board_opencv_draws():
    # reference: OpenCV's own drawing of the board, sampled at the centre of every marker cell
    board = TINY_CHARUCO
    cells = marker_cells(board)
    c = cells.shape[-1]
    px = 140  # pixels per square: the drawn board is exactly cols x rows squares
    img = charuco_board(board).generateImage((board.cols * px, board.rows * px), marginSize=0)
    ratio = board.marker_size / board.square_size
    off = (1 - ratio) / 2
    for j in range(board.rows):
        for i in range(board.cols):
            centres = (off + (np.arange(c) + 0.5) / c * ratio) * px
            ys, xs = np.meshgrid(j * px + centres, i * px + centres, indexing="ij")
            drawn = img[ys.astype(int), xs.astype(int)] < 128
            np.testing.assert_array_equal(drawn, cells[j, i], err_msg=f"square ({i}, {j})")


def _view(rig, k: int, cam: int = 0, ss: int = 2):
    c = rig.cameras[cam]
    pose = rig.board_poses[k]
    img = render_view(c, rig.board, pose, _background(cam, c.image_size, 0), 0.7, 2.0,
                      np.random.default_rng(k), ss)
    uv, inside = project_corners(c, rig.board, pose)
    return img, uv, inside


@pytest.mark.parametrize("search", ["fast", "thorough"])
def test_rendered_partial_views_are_detected_with_their_ids(charuco_rig, tmp_path, search):
    # reference: OpenCV's detector reads our rendered markers: the ids it reports sit on the true corners
    b = charuco_rig.board
    n_seen = errs = 0
    all_errs = []
    for k in range(4):
        img, uv, inside = _view(charuco_rig, k)
        path = tmp_path / f"v{k}.png"
        cv2.imwrite(str(path), img)
        det = detect_charuco(str(path), f"v{k}", b, search=search)
        assert det.found, det.reason
        ids = det.corner_ids()
        assert list(ids) == sorted(ids) and inside[ids].all()  # detected corners are visible ones
        assert len(ids) < len(uv)  # a part of the board
        e = np.linalg.norm(np.asarray(det.corners) - uv[ids], axis=1)
        all_errs.append(e)
        n_seen += len(ids)
        errs += int((e > 1.0).sum())
    e = np.concatenate(all_errs)
    assert np.sqrt(np.mean(e**2)) < 0.35 and errs <= 0.02 * n_seen


def test_few_corners_blank_and_unreadable_views_say_why(charuco_rig, tmp_path):
    b = charuco_rig.board
    img, uv, _ = _view(charuco_rig, 0)
    # keep a corner of the image only: a couple of markers, fewer than 6 corners
    crop = np.full_like(img, 200)
    crop[:60, :60] = img[:60, :60]
    cv2.imwrite(str(tmp_path / "few.png"), crop)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((240, 320), 30, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"xx")
    few = detect_charuco(str(tmp_path / "few.png"), "few", b)
    assert not few.found and few.reason.startswith("no board (") and "need 6 corners" in few.reason
    assert detect_charuco(str(tmp_path / "blank.png"), "b", b).reason.startswith("blank image")
    assert detect_charuco(str(tmp_path / "bad.png"), "x", b).reason == "unreadable image"


def test_partial_rig_sees_40_to_80_percent_and_chessboard_twin_has_the_same_poses():
    rig = synthetic_rig(4, 6, (640, 480), seed=2, depth=(0.5, 1.2), board=CHARUCO_BOARD, visible=(0.4, 0.8))
    twin = synthetic_rig(4, 6, (640, 480), seed=2, depth=(0.5, 1.2), board=PARTIAL_CHESSBOARD,
                         visible=(0.4, 0.8))
    for pose, pose_twin in zip(rig.board_poses, twin.board_poses, strict=True):
        for cam in rig.cameras:
            assert 0.4 <= visible_fraction(cam, rig.board, pose) <= 0.8
        # the same physical corners: ChArUco corner (i, j) is the chessboard's inner corner (i, j)
        world = object_points(rig.board) @ pose[0].T + pose[1]
        world_twin = object_points(twin.board) @ pose_twin[0].T + pose_twin[1]
        np.testing.assert_allclose(world, world_twin, atol=1e-6)  # OpenCV keeps its corners in float32


def test_a_partial_chessboard_is_a_lost_view_a_partial_charuco_is_not(tmp_path):
    rigs = {b.type: synthetic_rig(2, 1, (640, 480), seed=4, depth=(0.5, 1.2), board=b, visible=(0.5, 0.7))
            for b in (CHARUCO_BOARD, PARTIAL_CHESSBOARD)}
    found = {}
    for kind, rig in rigs.items():
        img, _, _ = _view(rig, 0, ss=1)
        cv2.imwrite(str(tmp_path / f"{kind}.png"), img)
        b: Board = rig.board
        if kind == "charuco":
            found[kind] = detect_charuco(str(tmp_path / f"{kind}.png"), kind, b)
        else:
            found[kind] = detect_image(str(tmp_path / f"{kind}.png"), kind, b.cols, b.rows, search="thorough")
    assert found["charuco"].found and len(found["charuco"].ids) >= 20
    assert not found["chessboard"].found and found["chessboard"].reason.startswith("no board")
