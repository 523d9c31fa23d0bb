"""The synthetic datasets of the two-stream and untrimmed work, behind ``deepnotes video synth KIND``.

* ``appearance_motion``: 4 classes = colour x direction (:mod:`deepnotes.video.two_stream.synth`);
  ``--n-per-class`` / ``--val-per-class`` videos per class, ``--frames`` per video.
* ``untrimmed``: long videos with ground truth plus trimmed training windows with a background class
  (:mod:`deepnotes.video.untrimmed.dataset`); ``--n-per-class`` is the number of training videos,
  ``--val-per-class`` of validation videos, ``--frames`` each video's length (>= 48), ``--size`` its side.
"""

from __future__ import annotations

from pathlib import Path

EXTRA_KINDS = ("appearance_motion", "untrimmed")


def synth_extra(kind: str, out: str | Path, n: int, n_val: int | None, frames: int, size: int,
                seed: int) -> dict[str, Path]:
    n_val = max(2, n // 3) if n_val is None else n_val
    if kind == "appearance_motion":
        from deepnotes.video.two_stream.synth import write_appearance_motion

        return write_appearance_motion(out, n, n_val, frames, size, seed)
    if kind == "untrimmed":
        from deepnotes.video.untrimmed.dataset import write_untrimmed_dataset

        if frames < 48 or size < 32:
            raise ValueError(f"untrimmed videos need --frames >= 48 and --size >= 32 (got {frames}, {size}); "
                             "e.g. --frames 120 --size 64")
        return write_untrimmed_dataset(out, n, n_val, seed=seed, num_frames=frames, size=size)
    raise ValueError(f"unknown synthetic dataset {kind!r}; valid here: {', '.join(EXTRA_KINDS)}")
