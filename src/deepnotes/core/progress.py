"""Progress bars for long work (tqdm; quiet when output is not a terminal unless forced)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None,
             leave: bool = False) -> Iterator[T]:
    """Wrap an iterable with a progress bar on stderr.

    Bars show on a terminal; set ``DEEPNOTES_PROGRESS=1`` to force them (e.g. in logs) or ``0`` to hide them.
    Under torchrun only rank 0 draws them (N processes would draw N interleaved bars).
    """
    env = os.environ.get("DEEPNOTES_PROGRESS")
    disable = (not sys.stderr.isatty()) if env is None else env == "0"
    disable = disable or int(os.environ.get("RANK", "0")) > 0
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    # tqdm.auto's class calls iter() on an iterable in its constructor and again when iterated: handed a
    # DataLoader, that made a second loader iterator (with workers: a second set of processes, prefetching)
    # and drew its worker seed from the RNG twice. Given an iterator, it iterates that one only.
    bar = tqdm(iter(iterable), desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=True)
    return iter(bar)
