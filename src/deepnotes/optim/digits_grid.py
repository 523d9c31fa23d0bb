"""Learning-rate x weight-decay grid on scikit-learn's digits with a small CNN (AdamW paper, Fig. 2, reduced).

Axes follow the paper. For Adam the decay axis is the L2 coefficient lambda added to the gradient
(``weight_decay`` of :class:`deepnotes.optim.Adam`). For AdamW it is the decay per unit of learning-rate
*schedule*, independent of the base lr: each step shrinks w by (1 - eta_t lambda) with eta_t the cosine
multiplier, i.e. ``weight_decay = lambda / lr`` in torch's convention (which multiplies by lr). If the two
hyperparameters are decoupled, the best lambda should not move when lr moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepnotes.core import progress
from deepnotes.optim.adam import Adam, AdamW
from deepnotes.optim.schedule import cosine_with_warmup


def load_digits_split(seed: int, val_fraction: float = 0.3) -> tuple[torch.Tensor, ...]:
    """Digits (1797 8x8 images shipped inside scikit-learn) as x (N, 1, 8, 8) in [0, 1] and labels (N,)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    idx_train, idx_val = train_test_split(np.arange(len(y)), test_size=val_fraction, random_state=seed,
                                          stratify=data.target)
    return x[idx_train], y[idx_train], x[idx_val], y[idx_val]


def small_cnn(width: int = 16) -> nn.Module:
    """(N, 1, 8, 8) -> (N, 10) logits: two 3x3 convs (the second strided) and a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * 16, 10),
    )


class GridCNN(nn.Module):
    """G independent copies of :func:`small_cnn` run as one grouped network, one member per grid cell.

    Each member keeps its own leaf tensors (so each can sit in its own optimizer param group with its own
    lr and decay); the forward concatenates them into grouped convolutions, which costs one kernel for all
    members instead of G. Every member starts from the same initial weights (a paired comparison).
    Input (N, 1, 8, 8), output (N, G, 10).
    """

    def __init__(self, members: int, width: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        template = small_cnn(width)
        self.members = nn.ModuleList(
            nn.ParameterList([nn.Parameter(t.detach().clone()) for t in template.parameters()])
            for _ in range(members)
        )
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = (torch.cat([m[i] for m in self.members]) for i in range(6))
        g = len(self.members)
        h = torch.relu(nn.functional.conv2d(x.expand(-1, g, -1, -1), w1, b1, padding=1, groups=g))
        h = torch.relu(nn.functional.conv2d(h, w2, b2, stride=2, padding=1, groups=g))
        h = h.reshape(x.shape[0], g, -1)  # (N, G, 2w * 16), the same order as nn.Flatten per member
        return torch.einsum("ngf,gof->ngo", h, w3.view(g, 10, -1)) + b3.view(g, 10)

    def member(self, i: int) -> nn.Module:
        """Member ``i`` as a stand-alone :func:`small_cnn` (a copy)."""
        model = small_cnn(self.width)
        with torch.no_grad():
            for dst, src in zip(model.parameters(), self.members[i], strict=True):
                dst.copy_(src)
        return model


def train_grid(name: str, cells: list[tuple[float, float]], data: tuple[torch.Tensor, ...], epochs: int,
               seed: int, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Validation accuracy (len(cells),) of ``name`` in {"Adam", "AdamW"} at each (lr, decay) cell.

    All cells train at once (one :class:`GridCNN`, one param group per cell) on the same minibatches.
    """
    if name not in ("Adam", "AdamW"):
        raise ValueError(f"unknown optimizer {name!r}; valid: Adam, AdamW")
    x_train, y_train, x_val, y_val = (t.to(device) for t in data)
    model = GridCNN(len(cells), seed=seed).to(device)
    groups = [{"params": list(m), "lr": lr, "weight_decay": decay if name == "Adam" else decay / lr}
              for m, (lr, decay) in zip(model.members, cells, strict=True)]
    opt = (Adam if name == "Adam" else AdamW)(groups, foreach=True)
    steps_per_epoch = -(-len(y_train) // batch_size)
    sched = cosine_with_warmup(opt, warmup_steps=steps_per_epoch, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=gen).to(device)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            logits = model(x_train[idx])  # (B, G, 10)
            # summed over members: each member's gradient is that of its own mean cross-entropy
            targets = y_train[idx].unsqueeze(1).expand(-1, len(cells))
            loss = nn.functional.cross_entropy(logits.permute(0, 2, 1), targets, reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (model(x_val).argmax(-1) == y_val.unsqueeze(1)).float().mean(0).cpu().numpy()


@dataclass
class Grid:
    lrs: np.ndarray  # (L,)
    decays: dict[str, np.ndarray]  # optimizer -> (D,) values on its decay axis
    acc: dict[str, np.ndarray]  # optimizer -> (L, D) validation accuracy, averaged over seeds


def sweep(lrs: np.ndarray, decays: dict[str, np.ndarray], epochs: int, seeds: list[int],
          device: torch.device, data_seed: int = 0) -> Grid:
    """Train every (optimizer, lr, decay) cell for each seed; one shared train/validation split."""
    data = load_digits_split(data_seed)
    acc = {}
    jobs = [(name, s) for name in decays for s in seeds]
    for name, s in progress(jobs, desc="lr x decay grids", total=len(jobs)):
        cells = [(float(lr), float(d)) for lr in lrs for d in decays[name]]
        cell_acc = train_grid(name, cells, data, epochs, s, device).reshape(len(lrs), len(decays[name]))
        acc[name] = acc.get(name, 0) + cell_acc / len(seeds)
    return Grid(np.asarray(lrs), decays, acc)


def optimum_coupling(grid: Grid, name: str) -> tuple[float, np.ndarray]:
    """Slope of log(best decay) against log(lr) across the grid rows, and the best decay per row.

    A slope near -1 means the best decay scales like 1/lr (coupled); near 0 means it does not move.
    Ties within a row are broken by the accuracy-weighted mean of log decay over the row's top entries.
    """
    acc, decays = grid.acc[name], grid.decays[name]
    logd = np.log10(decays)
    best = []
    for row in acc:
        top = row >= row.max() - 1e-9
        best.append(float(logd[top].mean()))
    best_arr = np.array(best)
    slope = float(np.polyfit(np.log10(grid.lrs), best_arr, 1)[0])
    return slope, 10**best_arr


DECAY_LABELS = {"Adam": "L2 coefficient lambda", "AdamW": "decay per schedule unit (= lr x weight_decay)"}


def plot_grid(grid: Grid):
    """Side-by-side heat maps of validation accuracy (rows lr, columns decay); red star = best cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grid.acc), figsize=(5.5 * len(grid.acc), 4.2), squeeze=False)
    for ax, (name, acc) in zip(axes[0], grid.acc.items(), strict=True):
        slope, _ = optimum_coupling(grid, name)
        im = ax.imshow(acc * 100, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(acc.shape[1]), [f"{d:.0e}" for d in grid.decays[name]], rotation=45)
        ax.set_yticks(range(acc.shape[0]), [f"{lr:.0e}" for lr in grid.lrs])
        ax.set_xlabel(DECAY_LABELS.get(name, "decay"))
        ax.set_ylabel("learning rate")
        ax.set_title(f"{name}: best-decay slope vs lr {slope:.2f}")
        i, j = np.unravel_index(np.argmax(acc), acc.shape)
        ax.plot(j, i, "r*", markersize=14)
        for (r, c), value in np.ndenumerate(acc):
            ax.text(c, r, f"{value * 100:.1f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, label="val. accuracy %")
    fig.tight_layout()
    return fig
