"""Write the synthetic untrimmed set to disk: long videos with ActivityNet ground truth, plus trimmed
windows (with a ``background`` class) as a video list that ``deepnotes video train`` reads.

Layout of ``OUT``: ``videos/<split>_<i>.mp4`` (untrimmed), ``<split>_gt.json`` (ActivityNet format),
``windows/<split>_<i>_<start>.mp4`` + ``train.txt`` / ``val.txt`` (``path label``), ``classes.txt``,
``flip_map.json`` (a mirrored run_right is a run_left).
"""

from __future__ import annotations

import json
from pathlib import Path

from deepnotes.core import atomic_write_text
from deepnotes.video.data.lists import write_list
from deepnotes.video.data.synth import write_mp4
from deepnotes.video.untrimmed.results import ground_truth_json, write_json
from deepnotes.video.untrimmed.synth import CLASSES, FLIP_MAP, make_untrimmed_set, window_clips


def write_untrimmed_dataset(out: str | Path, n_train: int = 8, n_val: int = 4, window: int = 16,
                            stride: int = 4, seed: int = 0, **video_options) -> dict[str, Path]:
    """Generate and write the set (deterministic by ``seed``); returns the paths of the lists and JSONs."""
    out = Path(out)
    paths: dict[str, Path] = {}
    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        videos = make_untrimmed_set(n, seed=seed * 1000 + split_id, **video_options)
        named = {f"{split}_{i:04d}": v for i, v in enumerate(videos)}
        for vid, v in named.items():
            write_mp4(out / "videos" / f"{vid}.mp4", v.frames, fps=round(v.fps))
        rows = []
        for v_idx, start, label in window_clips(videos, window, stride):
            rel = f"windows/{split}_{v_idx:04d}_{start:05d}.mp4"
            write_mp4(out / rel, videos[v_idx].frames[start:start + window], fps=round(videos[v_idx].fps))
            rows.append((rel, label))
        write_list(out / f"{split}.txt", rows)
        subset = "training" if split == "train" else "validation"
        write_json(out / f"{split}_gt.json", ground_truth_json(named, subset))
        paths[split] = out / f"{split}.txt"
        paths[f"{split}_gt"] = out / f"{split}_gt.json"
    atomic_write_text(out / "classes.txt", "".join(c + "\n" for c in CLASSES))
    atomic_write_text(out / "flip_map.json", json.dumps({str(k): v for k, v in FLIP_MAP.items()}) + "\n")
    paths.update(classes=out / "classes.txt", flip_map=out / "flip_map.json")
    return paths
