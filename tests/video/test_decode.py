import cv2
import numpy as np
import pytest

from deepnotes.video.data import decode
from deepnotes.video.data.decode import (
    VideoReadError,
    count_frame_files,
    count_frames,
    read_frame_folder,
    read_video,
)
from deepnotes.video.data.synth import write_mp4


@pytest.fixture(scope="module")
def ramp_video(tmp_path_factory):
    """10 frames of flat grey levels 20, 40, ..., 200: each frame is identifiable after compression."""
    video = np.stack([np.full((16, 24, 3), 20 * (i + 1), np.uint8) for i in range(10)])
    path = tmp_path_factory.mktemp("v") / "ramp.mp4"
    write_mp4(path, video)
    return path, video


def test_pyav_reads_frames_in_requested_order(ramp_video):
    path, video = ramp_video
    assert count_frames(path) == 10
    frames = read_video(path, [7, 2, 2, 9])
    assert frames.shape == (4, 16, 24, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - video[[7, 2, 2, 9]].astype(int)).max() <= 3


def test_opencv_fallback_agrees_with_pyav(ramp_video, monkeypatch):
    path, _ = ramp_video
    ref = read_video(path)

    def broken(*args):
        raise RuntimeError("pyav unavailable")

    monkeypatch.setattr(decode, "_pyav_frames", broken)
    fallback = read_video(path)
    assert fallback.shape == ref.shape
    assert np.abs(fallback.astype(int) - ref.astype(int)).max() <= 3


def test_indices_past_the_end_are_clamped(ramp_video):
    path, _ = ramp_video
    np.testing.assert_array_equal(read_video(path, [12]), read_video(path, [9]))


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_corrupt_or_empty_video_raises(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        read_video(path, [0])


def test_frame_folder_template(tmp_path):
    for i in range(1, 4):
        cv2.imwrite(str(tmp_path / f"img_{i:05d}.jpg"), np.full((8, 8, 3), (10 * i, 0, 200), np.uint8))
    frames = read_frame_folder(tmp_path, [0, 2])
    assert frames.shape == (2, 8, 8, 3)
    assert abs(int(frames[1, 0, 0, 2]) - 30) <= 3 and abs(int(frames[0, 0, 0, 0]) - 200) <= 3  # BGR -> RGB
    with pytest.raises(VideoReadError, match="img_00005.jpg"):
        read_frame_folder(tmp_path, [4])


def test_count_frame_files_counts_rgb_frames_only(tmp_path):
    # mmaction2's rawframe folders hold img_*, flow_x_* and flow_y_* side by side
    for i in range(1, 6):
        for name in (f"img_{i:05d}.jpg", f"flow_x_{i:05d}.jpg", f"flow_y_{i:05d}.jpg"):
            (tmp_path / name).write_bytes(b"x")
    assert count_frame_files(tmp_path) == 5
    assert count_frame_files(tmp_path, "flow_x_{:05d}.jpg") == 5
    (tmp_path / "img_00000.jpg").write_bytes(b"x")
    assert count_frame_files(tmp_path, start_index=0) == 6
    with pytest.raises(VideoReadError, match="frame_0001.png"):
        count_frame_files(tmp_path, "frame_{:04d}.png")


def _encode(path, frames, fmt=None, options=None):
    import av

    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream("libx264", rate=8)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "4"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


def test_a_truncated_video_is_an_error_not_a_frozen_clip(tmp_path):
    # the index first ("faststart"), so the header still counts 40 frames after the data is cut in half
    frames = np.stack([np.full((32, 32, 3), 6 * i, np.uint8) for i in range(40)])
    _encode(tmp_path / "whole.mp4", frames, options={"movflags": "faststart"})
    data = (tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    assert count_frames(tmp_path / "cut.mp4") == 40
    assert len(read_video(tmp_path / "cut.mp4", [0, 1, 2])) == 3  # what does decode is still readable
    with pytest.raises(VideoReadError, match="cut.mp4: frame 37 was asked for"):
        read_video(tmp_path / "cut.mp4", [2, 12, 22, 37])
    assert len(read_video(tmp_path / "whole.mp4", [39, 41, 42])) == 3  # a header a few frames long: clamped


def test_a_stream_that_changes_resolution_is_an_error(tmp_path):
    for name, width in (("a.ts", 32), ("b.ts", 48)):
        _encode(tmp_path / name, np.zeros((8, 32, width, 3), np.uint8), fmt="mpegts")
    (tmp_path / "mixed.ts").write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    with pytest.raises(VideoReadError, match="different sizes"):
        read_video(tmp_path / "mixed.ts")
