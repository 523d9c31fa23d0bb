"""The calib claims' baseline is the note's own call, argument for argument."""

from __future__ import annotations

import cv2
import numpy as np

from deepnotes.calib import claims


def test_note_corners_calls_corner_subpix_exactly_as_the_note_does(monkeypatch):
    calls = {}
    pts = np.arange(12, dtype=np.float32).reshape(6, 1, 2)

    def find(img, size, *rest, **kw):
        calls["find"] = (size, rest, kw)
        return True, pts.copy()

    def subpix(gray, corners, win, zero, criteria):
        calls["subpix"] = (win, zero, criteria)
        return corners

    monkeypatch.setattr(cv2, "imread", lambda path, flag: np.zeros((8, 8), np.uint8))
    monkeypatch.setattr(cv2, "findChessboardCorners", find)
    monkeypatch.setattr(cv2, "cornerSubPix", subpix)
    monkeypatch.setattr(claims, "canonical_order", lambda gray, c, cols, rows: c)
    out = claims.note_corners("x.png", 3, 2)
    # the note: findChessboardCorners(img, (w, h)) with default flags, then
    # cornerSubPix(gray, pts, (12, 12), (1, 1), (EPS + COUNT, 30, 0.1))
    assert calls["find"] == ((3, 2), (), {})
    assert calls["subpix"] == ((12, 12), (1, 1), (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.1))
    assert out.shape == (6, 2)
    monkeypatch.setattr(cv2, "findChessboardCorners", lambda img, size: (False, None))
    assert claims.note_corners("x.png", 3, 2) is None
