import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepnotes.video.data.sampling import ClipSampler, dense_indices, segment_indices


def test_tsn_test_mode_takes_segment_centres():
    np.testing.assert_array_equal(segment_indices(80, 8, train=False), [5, 15, 25, 35, 45, 55, 65, 75])


def test_tsn_train_mode_one_random_frame_per_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        idx = segment_indices(80, 8, train=True, rng=rng)
        assert np.all(idx // 10 == np.arange(8))
        seen.update(idx.tolist())
    assert len(seen) > 40  # offsets really vary


@given(total=st.integers(1, 300), segs=st.integers(1, 16), train=st.booleans(), seed=st.integers(0, 99))
def test_segment_indices_in_range_and_ordered(total, segs, train, seed):
    idx = segment_indices(total, segs, train, np.random.default_rng(seed))
    assert len(idx) == segs and idx.min() >= 0 and idx.max() < total
    assert np.all(np.diff(idx) >= 0)


def test_dense_clip_and_views():
    np.testing.assert_array_equal(dense_indices(100, 4, 2, train=False), [46, 48, 50, 52])
    views = ClipSampler("dense", 4, 2)(100, train=False, num_views=3)
    starts = [v[0] for v in views]
    assert starts == sorted(starts) and starts[0] < 46 < starts[-1]
    short = dense_indices(3, 4, 1, train=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(short, [0, 1, 2, 2])


@pytest.mark.parametrize("total,clip_len,interval,views",
                         [(13, 4, 2, 1), (9, 4, 1, 1), (100, 8, 4, 3), (40, 4, 2, 10)])
def test_dense_test_views_match_mmaction2_offsets(total, clip_len, interval, views):
    # mmaction2 SampleFrames(test_mode=True): avg = (total - clip_len * interval + 1) / views,
    # offset_v = int(v * avg + avg / 2); e.g. 5 free frames, one view -> start 3 (round-half-even gave 2)
    avg = (total - clip_len * interval + 1) / views
    expected = [int(v * avg + avg / 2) for v in range(views)]
    got = [int(v[0]) for v in ClipSampler("dense", clip_len, interval)(total, train=False, num_views=views)]
    assert got == expected


def test_new_length_takes_consecutive_frames():
    idx = segment_indices(50, 2, train=False, new_length=3)
    np.testing.assert_array_equal(idx, [12, 13, 14, 36, 37, 38])


def test_bad_sampler_config():
    with pytest.raises(ValueError, match="sampling mode"):
        ClipSampler("sparse")


@pytest.mark.parametrize("total,segments,new_length", [(5, 8, 1), (3, 8, 1), (8, 8, 1), (6, 3, 5), (4, 3, 5)])
def test_videos_shorter_than_the_segments_are_spread_as_mmaction2_does(total, segments, new_length):
    # mmaction2 SampleFrames(train): avg = (T - L + 1) // N; avg > 0: a random offset per segment; else if
    # T > max(N, L): sorted random starts; else if avg == 0: around(arange(N) * (T - L + 1) / N); else 0
    span = total - new_length + 1
    rng = np.random.default_rng(0)
    got = segment_indices(total, segments, True, rng, new_length=new_length)
    got = got.reshape(segments, new_length)[:, 0]
    if span // segments > 0 or total > max(segments, new_length):
        assert (np.diff(got) >= 0).all()
    else:
        # (mmaction2 wraps a start rounded one past the end to frame 0; here it stays the last start)
        even = np.minimum(np.around(np.arange(segments) * span / segments), span - 1)
        expected = even if span > 0 else 0 * got
        np.testing.assert_array_equal(got, expected)
