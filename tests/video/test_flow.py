"""Optical flow: computation against known motion, storage round trip, parallel + resumable extraction,
bad input, and the flow dataset's flow-aware transforms."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from deepnotes.video.data.synth import write_mp4
from deepnotes.video.two_stream.dataset import FlowLoader, flow_dataset, resize_flow, stack_flow
from deepnotes.video.two_stream.flow import (
    DONE_FILE,
    FlowUnavailable,
    compute_flow,
    dequantize_flow,
    extract_list,
    flow_info,
    make_flow_fn,
    quantize_flow,
    read_flow,
)


def moving_square(n: int = 6, size: int = 48, dx: float = 2.0, dy: float = 0.0, seed: int = 0) -> np.ndarray:
    """A textured square translating by (dx, dy) px per frame over a static textured background."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3)).astype(np.uint8), (5, 5), 1.0)
    obj = cv2.GaussianBlur(rng.integers(0, 255, (14, 14, 3)).astype(np.uint8), (3, 3), 0.8)
    frames = []
    for t in range(n):
        f = bg.copy()
        x, y = int(round(10 + dx * t)), int(round(16 + dy * t))
        f[y:y + 14, x:x + 14] = obj
        frames.append(f)
    return np.stack(frames)


@pytest.fixture(scope="session")
def flow_videos(tmp_path_factory):
    """A list of 3 good videos (square moving right), one 1-frame video, one missing file."""
    root = tmp_path_factory.mktemp("flowvids")
    rows = []
    for i in range(3):
        write_mp4(root / f"v/clip{i}.mp4", moving_square(8, seed=i))
        rows.append(f"v/clip{i}.mp4 {i % 2}")
    write_mp4(root / "v/short.mp4", moving_square(1))
    rows += ["v/short.mp4 0", "v/missing.mp4 1"]
    (root / "list.txt").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flow_recovers_known_translation(method):
    frames = moving_square(4, dx=2.0, dy=-1.0)
    flow = compute_flow(frames, method)
    assert flow.shape == (3, 48, 48, 2)
    # inside the object (away from its edges) the flow is the translation
    inner = flow[0, 19:26, 13:20].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, 0), [2.0, -1.0], atol=0.35)
    # the static background far from the object does not move
    assert np.abs(np.median(flow[0, 40:, 35:].reshape(-1, 2), 0)).max() < 0.2


def test_tvl1_is_used_or_refused_clearly():
    if hasattr(cv2, "optflow"):
        flow = compute_flow(moving_square(3), "tvl1")
        assert flow.shape == (2, 48, 48, 2)
    else:
        with pytest.raises(FlowUnavailable, match="opencv-contrib"):
            make_flow_fn("tvl1")
    with pytest.raises(ValueError, match="unknown flow method"):
        make_flow_fn("lucas")


def test_quantisation_round_trip_and_clipping():
    bound = 20.0
    f = np.linspace(-30, 30, 601, dtype=np.float32)
    q = quantize_flow(f, bound)
    assert q.dtype == np.uint8 and q.min() == 0 and q.max() == 255
    back = dequantize_flow(q, bound)
    inside = np.abs(f) <= bound
    # error inside the bound is at most half a quantisation step; outside it is clipped to the bound
    assert np.abs(back[inside] - f[inside]).max() <= bound / 255 + 1e-5
    np.testing.assert_allclose(back[f > bound], bound, atol=1e-5)
    np.testing.assert_allclose(back[f < -bound], -bound, atol=1e-5)


def test_extract_list_in_parallel_resumes_and_reports_bad_videos(flow_videos, tmp_path):
    out = tmp_path / "flow"
    report = extract_list(flow_videos / "list.txt", out, method="dis", workers=2, bound=20.0,
                          formats=("jpg", "npz"), show_progress=False)
    assert sorted(report.written) == ["v/clip0.mp4", "v/clip1.mp4", "v/clip2.mp4"]
    failed = dict(report.failed)
    assert set(failed) == {"v/short.mp4", "v/missing.mp4"}
    assert "at least 2" in failed["v/short.mp4"] and "does not exist" in failed["v/missing.mp4"]
    saved = json.loads((out / "flow_report.json").read_text())
    assert len(saved["failed"]) == 2
    # the flow list is in raw-frame list format, in list order, good videos only
    assert (out / "flow_list.txt").read_text().splitlines() == ["v/clip0 7 0", "v/clip1 7 1", "v/clip2 7 0"]
    folder = out / "v/clip0"
    assert (folder / "x_00001.jpg").is_file() and (folder / "y_00007.jpg").is_file()
    assert not (folder / "x_00008.jpg").exists()
    # JPEG and npz agree up to JPEG's loss; npz holds exactly the quantised values
    from_jpg, from_npz = read_flow(folder, [0, 3], fmt="jpg"), read_flow(folder, [0, 3], fmt="npz")
    assert np.abs(from_jpg - from_npz).mean() < 0.3
    direct = compute_flow(moving_square(8, seed=0), "dis")  # same frames, before mp4 compression
    assert np.abs(np.median(from_npz[0, 19:26, 13:20].reshape(-1, 2), 0) - [2.0, 0.0]).max() < 0.4
    assert direct.shape[1:3] == from_npz.shape[1:3]

    # resume: finished folders are skipped untouched; an interrupted one (no flow.json) is redone
    stamp = (folder / DONE_FILE).stat().st_mtime_ns
    (out / "v/clip2" / DONE_FILE).unlink()
    again = extract_list(flow_videos / "list.txt", out, method="dis", workers=1, show_progress=False)
    assert sorted(again.skipped_done) == ["v/clip0.mp4", "v/clip1.mp4"]
    assert again.written == ["v/clip2.mp4"]
    assert (folder / DONE_FILE).stat().st_mtime_ns == stamp
    assert flow_info(out / "v/clip2")["frames"] == 7
    # a video that changed since its flow was extracted is redone (here: now 6 frames)
    write_mp4(flow_videos / "v/clip1.mp4", moving_square(6, seed=1))
    third = extract_list(flow_videos / "list.txt", out, method="dis", workers=1, show_progress=False)
    assert third.written == ["v/clip1.mp4"] and flow_info(out / "v/clip1")["frames"] == 5
    write_mp4(flow_videos / "v/clip1.mp4", moving_square(8, seed=1))  # restore for the other tests


def test_flow_of_mirrored_video_is_flipped_flow_with_negated_x():
    frames = moving_square(3, dx=2.0, dy=1.0)
    flow = torch.from_numpy(compute_flow(frames, "dis")).permute(0, 3, 1, 2)  # (T, 2, H, W)
    mirrored_frames = np.ascontiguousarray(frames[:, :, ::-1])
    mirrored = torch.from_numpy(compute_flow(mirrored_frames, "dis")).permute(0, 3, 1, 2)
    from deepnotes.video.data.transforms import HorizontalFlip

    class Always:  # rng stand-in that always flips
        def random(self):
            return 0.0

    flipped, _ = HorizontalFlip(1.0, negate_channels=(0,))(flow, 0, Always())
    region = (slice(None), slice(None), slice(19, 26), slice(48 - 20, 48 - 13))
    np.testing.assert_allclose(flipped[region].median(-1).values.median(-1).values,
                               mirrored[region].median(-1).values.median(-1).values, atol=0.35)
    assert flipped[0, 0, 22, 30] < -1.5  # it moved right, so mirrored it moves left


def test_resize_scales_displacements():
    frames = moving_square(3, dx=2.0, dy=1.0)
    flow = torch.from_numpy(compute_flow(frames, "dis")).permute(0, 3, 1, 2)
    big = resize_flow(flow, (96, 48))  # height doubled, width kept
    inner = big[0, :, 40:50, 13:20].reshape(2, -1).median(-1).values
    np.testing.assert_allclose(inner.numpy(), [2.0, 2.0], atol=0.5)


def test_flow_dataset_stacks_segments_and_skips_broken_folders(flow_videos, tmp_path):
    out = tmp_path / "flow"
    extract_list(flow_videos / "list.txt", out, method="farneback", workers=1, formats=("jpg",),
                 show_progress=False)
    ds = flow_dataset(out / "flow_list.txt", num_segments=2, new_length=3, input_size=32, train=True, seed=1)
    item = ds[0]
    assert item["clip"].shape == (2, 6, 32, 32) and item["label"] == 0
    stacks = stack_flow(item["clip"].unsqueeze(0), 3)
    assert stacks.shape == (1, 2, 6, 32, 32)
    # channel order x1, y1, x2, y2, ...: stack channel 2k is x of field k
    torch.testing.assert_close(stacks[0, 1, 2], item["clip"][0, 4])
    torch.testing.assert_close(stacks[0, 1, 3], item["clip"][1, 4])
    test_ds = flow_dataset(out / "flow_list.txt", num_segments=2, new_length=3, input_size=32, train=False)
    assert test_ds[1]["clip"].shape == (1, 2, 6, 32, 32)
    # a broken flow image: the sample is skipped (None) by the shared dataset, not a crash
    (out / "v/clip1/x_00002.jpg").write_bytes(b"not a jpeg")
    broken = flow_dataset(out / "flow_list.txt", num_segments=7, new_length=1, input_size=32, train=False)
    assert broken[1] is None and broken[0] is not None
    # a list whose frame count disagrees with the folder, and a folder that is not finished, name the problem
    from deepnotes.video.data.decode import VideoReadError
    from deepnotes.video.data.lists import VideoRecord

    with pytest.raises(VideoReadError, match="lists 5 flow frames, the folder holds 7"):
        FlowLoader().num_frames(VideoRecord(out / "v/clip0", 0, 5, "flow_list.txt:1"))
    with pytest.raises(VideoReadError, match="not a finished flow folder"):
        FlowLoader().num_frames(VideoRecord(out / "v/nothing", 0, 5, "flow_list.txt:9"))
    with pytest.raises(VideoReadError, match="bound 20.0"):
        FlowLoader(bound=10.0).num_frames(VideoRecord(out / "v/clip0", 0, 7, "flow_list.txt:1"))


def test_flow_of_absolute_and_climbing_paths_is_written_under_out_only(flow_videos, tmp_path):
    """Videos are read where the list points (absolute, or '..' out of the list's folder); their flow goes
    under --out by a name derived from the line, never beside the video, and pairs with the RGB list."""
    from deepnotes.video.data.lists import read_list
    from deepnotes.video.two_stream.dataset import pair_flow_lists
    from deepnotes.video.two_stream.flow import flow_dir_name

    lists = tmp_path / "lists"
    lists.mkdir()
    elsewhere = flow_videos / "v"  # outside the list's folder
    lst = lists / "l.txt"
    lst.write_text(f"{elsewhere / 'clip0.mp4'} 0\n{_climb(lists, elsewhere / 'clip1.mp4')} 1\n")
    before = sorted(p.name for p in elsewhere.iterdir())
    out = tmp_path / "flow"
    report = extract_list(lst, out, method="farneback", workers=1, formats=("npz",), show_progress=False)
    assert not report.failed and len(report.written) == 2
    assert sorted(p.name for p in elsewhere.iterdir()) == before  # nothing written beside the videos
    names = [flow_dir_name(v) for v in report.written]
    assert all(n.startswith("external/") for n in names)
    assert [n.rsplit("/", 1)[1] for n in names] == ["clip0", "clip1"] and names[0] != names[1]
    for name in names:
        folder = (out / name).resolve()
        assert folder.is_relative_to(out.resolve()) and flow_info(folder)["frames"] == 7
    rows = (out / "flow_list.txt").read_text().splitlines()
    assert rows == [f"{names[0]} 7 0", f"{names[1]} 7 1"]
    pairs = pair_flow_lists(read_list(lst), read_list(out / "flow_list.txt", kind="rawframes"))
    assert len(pairs) == 2
    # names from odd lines stay inside out
    for line in ("/..", "../..", "/a/b/..", "../../etc/passwd"):
        assert not flow_dir_name(line).startswith(("/", "..")) and ".." not in flow_dir_name(line).split("/")


def _climb(start, target) -> str:
    """``target`` written relative to ``start`` with ``..`` steps."""
    import os

    return os.path.relpath(target, start)
