"""Progress bars: each iterable is iterated once, totals come from len(), only rank 0 draws."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from deepnotes.core import progress


class CountingIterable:
    def __init__(self, n: int) -> None:
        self.n, self.iters = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        self.iters += 1
        return iter(range(self.n))


def test_iterates_once_and_yields_everything(monkeypatch):
    for env in ("1", "0"):  # drawn and hidden bars alike
        monkeypatch.setenv("DEEPNOTES_PROGRESS", env)
        it = CountingIterable(5)
        assert list(progress(it, desc="x")) == [0, 1, 2, 3, 4] and it.iters == 1


def test_dataloader_draws_its_seed_once(monkeypatch):
    """A second loader iterator (tqdm.auto makes one in its constructor) would draw the seed again."""
    monkeypatch.setenv("DEEPNOTES_PROGRESS", "1")
    order = [b.item() for b in progress(DataLoader(list(range(6)), shuffle=True,
                                                   generator=torch.Generator().manual_seed(3)))]
    direct = [b.item()
              for b in DataLoader(list(range(6)), shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert order == direct


def test_ranks_above_zero_draw_nothing(monkeypatch, capsys):
    monkeypatch.setenv("DEEPNOTES_PROGRESS", "1")
    monkeypatch.setenv("RANK", "1")
    assert list(progress(range(3), desc="hidden-bar")) == [0, 1, 2]
    assert "hidden-bar" not in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    list(progress(range(3), desc="shown-bar"))
    assert "shown-bar" in capsys.readouterr().err
