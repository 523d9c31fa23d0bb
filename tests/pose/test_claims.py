"""The heatmap-size claim's encode-decode floor (no training)."""

from __future__ import annotations

import math

from deepnotes.core.claims import registered_claims
from deepnotes.pose.claims import square_heatmap_floor


def test_heatmap_64_claim_is_registered_from_the_note_with_simplebaseline():
    c = next(c for c in registered_claims(["pose"]) if c.id == "pose.heatmap_64_floor")
    assert c.origin == "note" and "64x64" in c.source.note and "Simple Baselines" in c.paper.ref
    assert {t.name for t in c.tests if t.decides} == {"floor_64", "floor_smaller"}


def test_floor_lies_within_the_quantisation_bound_and_doubles_with_the_stride():
    floors = {side: square_heatmap_floor(256, side, 2000, seed=0) for side in (64, 32, 16)}
    for side, floor in floors.items():
        stride = 256 / side
        # argmax is off by at most half a heatmap pixel per axis, the quarter shift moves it 1/4 more
        assert 0 < floor < 0.75 * stride * math.sqrt(2)
    assert 1.7 < floors[32] / floors[64] < 2.3 and 1.7 < floors[16] / floors[32] < 2.3


def test_floor_is_zero_when_the_heatmap_has_the_input_resolution_and_joints_sit_on_pixels():
    # stride 1: a joint's nearest heatmap pixel is itself up to half a pixel; the floor stays below 0.75 px
    assert square_heatmap_floor(64, 64, 500, seed=1) < 0.75 * math.sqrt(2)
