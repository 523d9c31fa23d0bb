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


# ------------------------------------------------------------------------------------ seeking to keyframes


def _write(path, n=240, gop=6, start_ms=0, vfr=False, fmt=None, bframes=True):
    """``n`` distinct 48x64 frames (a moving bar over noise that changes every frame), H.264 with a keyframe
    every ``gop`` frames (no extra ones at scene cuts), B-frames, timestamps in ms from ``start_ms``, spaced
    40 ms (25 fps) or, with ``vfr``, 15..90 ms at random (variable frame rate)."""
    from fractions import Fraction

    import av

    rng = np.random.default_rng(n + gop)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "veryfast" if bframes else "ultrafast", "g": str(gop),
                          "keyint_min": str(gop), "sc_threshold": "0", "threads": "1"}
        t = start_ms
        for i in range(n):
            frame = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
            frame[:, (i * 3) % 64] = 255
            frame[i % 48] = (0, 200, 100)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = t, Fraction(1, 1000)
            t += int(rng.integers(15, 90)) if vfr else 40
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())
    return path


SEEK_VIDEOS = {
    "short_gop.mp4": {"gop": 6},
    "long_gop.mp4": {"gop": 250},  # one keyframe: seeking can only restart from frame 0
    "gop_30_no_bframes.mp4": {"gop": 30, "bframes": False},
    "late_start.mp4": {"gop": 12, "start_ms": 3000},  # timestamps start at 3 s
    "late_start.ts": {"gop": 12, "start_ms": 5000, "fmt": "mpegts"},  # MPEG-TS: seeks by a byte search
    "vfr.mkv": {"gop": 10, "vfr": True},  # Matroska seeks by presentation time
    "vfr_late.mp4": {"gop": 8, "vfr": True, "start_ms": 1234},
}


@pytest.fixture(scope="module")
def seek_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seek")
    return {name: _write(folder / name, **kw) for name, kw in SEEK_VIDEOS.items()}


def _samples(n: int, rng) -> list[np.ndarray]:
    """TSN-like sparse samples, one in reverse order with repeats, and one reaching past the end."""
    from deepnotes.video.data.sampling import segment_indices

    out = [segment_indices(n, 8, train=False), segment_indices(n, 8, train=True, rng=rng)]
    out += [np.sort(rng.choice(n, 5, replace=False)) for _ in range(4)]
    out += [np.array([n - 1, 150, 150, 3, n - 2, 101]), np.array([120, n - 1, n + 1])]
    return out


@pytest.mark.parametrize("name", sorted(SEEK_VIDEOS))
def test_seeking_gives_the_frames_of_a_full_decode(seek_videos, name, monkeypatch):
    from deepnotes.video.data import seek

    path = seek_videos[name]
    full = read_video(path)  # every frame, decoded in order from the start
    assert len(full) == 240 and len({f.tobytes() for f in full}) == 240  # every frame tells itself apart
    used = []
    real = seek.decode_seeking
    monkeypatch.setattr(decode, "decode_seeking", lambda *a: used.append(1) or real(*a))
    for idx in _samples(len(full), np.random.default_rng(0)):
        got = read_video(path, idx)
        np.testing.assert_array_equal(got, full[np.minimum(idx, len(full) - 1)], err_msg=f"{name} {idx}")
    assert used  # the samples above were read by seeking, not by the sequential decode


def test_seeking_decodes_from_the_keyframe_before_each_frame_only(seek_videos, monkeypatch):
    from deepnotes.video.data import seek

    decoded = []
    real_next = seek._Frames.__next__

    def counting(self):
        frame = real_next(self)
        decoded.append(frame.pts)
        return frame

    monkeypatch.setattr(seek._Frames, "__next__", counting)
    idx = np.array([110, 170, 230])  # keyframes every 6 frames at 108, 168, 228
    frames = read_video(seek_videos["short_gop.mp4"], idx)
    assert len(frames) == 3 and len(decoded) == 3 * 3  # 108..110, 168..170, 228..230
    decoded.clear()
    read_video(seek_videos["long_gop.mp4"], idx)  # one GOP: from frame 0 to 230, nothing skipped
    assert len(decoded) == 231


def test_a_failed_seek_falls_back_to_decoding_from_the_start(seek_videos, monkeypatch, caplog):
    from deepnotes.video.data import seek

    path = seek_videos["short_gop.mp4"]
    full = read_video(path)

    def broken(*args):
        raise seek.SeekFailed("lands after the target")

    monkeypatch.setattr(decode, "decode_seeking", broken)
    with caplog.at_level("DEBUG", logger="deepnotes.video"):
        got = read_video(path, [200, 120, 239])
    np.testing.assert_array_equal(got, full[[200, 120, 239]])
    assert "seeking in" in caplog.text and "decoding from the start" in caplog.text


def test_a_stream_without_usable_timestamps_is_not_seeked(seek_videos):
    """Frames the index cannot place (two packets with one timestamp) make the index refuse."""
    import av

    from deepnotes.video.data.seek import SeekFailed, frame_index

    class Packet:
        def __init__(self, pts):
            self.pts, self.size, self.is_keyframe = pts, 10, True
            self.is_discard = self.is_corrupt = False

    class Demuxer:
        def __init__(self, pts):
            self.pts = pts

        def demux(self, stream):
            return [Packet(p) for p in self.pts]

    assert list(frame_index(Demuxer([0, 80, 40]), None).pts) == [0, 40, 80]
    for bad in ([0, 40, 40], [0, None, 80], []):
        with pytest.raises(SeekFailed):
            frame_index(Demuxer(bad), None)
    with av.open(str(seek_videos["vfr.mkv"])) as container:
        index = frame_index(container, container.streams.video[0])
    assert len(index) == 240 and index.keyframe[::10].all() and index.keyframe.sum() == 24


def test_seeking_matches_opencv_at_the_same_indices(seek_videos):
    """An independent decoder (OpenCV's FFmpeg build, its own colour conversion) at the same frames."""
    path = seek_videos["short_gop.mp4"]
    idx = [7, 100, 163, 222]
    ref = decode._cv2_frames(path, None)
    got = read_video(path, idx)
    for k, i in enumerate(idx):
        assert ref[i][0] == i
        assert np.abs(got[k].astype(int) - ref[i][1].astype(int)).mean() < 2.0


def test_decoding_is_threaded(seek_videos):
    import av

    with av.open(str(seek_videos["short_gop.mp4"])) as container:
        assert decode._threaded(container).thread_type.name == "AUTO"


@pytest.mark.parametrize("name", ["vfr.mkv", "late_start.ts"])
def test_a_container_without_a_frame_count_is_counted_from_its_packets(seek_videos, name, monkeypatch):
    import av

    with av.open(str(seek_videos[name])) as container:
        assert container.streams.video[0].frames == 0  # no count in the header
    monkeypatch.setattr(decode, "_decode", lambda *a: pytest.fail("counted by decoding"))
    assert count_frames(seek_videos[name]) == 240
