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


def small_cnn(width: int = 32) -> nn.Module:
    """(N, 1, 8, 8) -> (N, 10) logits: two 3x3 convs (the second strided) and a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * 16, 10),
    )


def train_once(name: str, lr: float, decay: float, data: tuple[torch.Tensor, ...], epochs: int, seed: int,
               device: torch.device, batch_size: int = 64) -> float:
    """Validation accuracy after training with ``name`` in {"Adam", "AdamW"} at (lr, decay) on the grid's axes."""
    x_train, y_train, x_val, y_val = (t.to(device) for t in data)
    torch.manual_seed(seed)
    model = small_cnn().to(device)
    if name == "Adam":
        opt: torch.optim.Optimizer = Adam(model.parameters(), lr=lr, weight_decay=decay)
    elif name == "AdamW":
        opt = AdamW(model.parameters(), lr=lr, weight_decay=decay / lr)
    else:
        raise ValueError(f"unknown optimizer {name!r}; valid: Adam, AdamW")
    steps_per_epoch = -(-len(y_train) // batch_size)
    sched = cosine_with_warmup(opt, warmup_steps=steps_per_epoch, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=gen).to(device)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        return (model(x_val).argmax(1) == y_val).float().mean().item()


@dataclass
class Grid:
    lrs: np.ndarray  # (L,)
    decays: dict[str, np.ndarray]  # optimizer -> (D,) values on its decay axis
    acc: dict[str, np.ndarray]  # optimizer -> (L, D) validation accuracy, averaged over seeds


def sweep(lrs: np.ndarray, decays: dict[str, np.ndarray], epochs: int, seeds: list[int],
          device: torch.device, data_seed: int = 0) -> Grid:
    """Train every (optimizer, lr, decay, seed) combination; one shared train/validation split."""
    data = load_digits_split(data_seed)
    jobs = [(name, i, j, s) for name in decays for i in range(len(lrs)) for j in range(len(decays[name]))
            for s in seeds]
    acc = {name: np.zeros((len(lrs), len(d))) for name, d in decays.items()}
    for name, i, j, s in progress(jobs, desc="lr x decay grid", total=len(jobs)):
        acc[name][i, j] += train_once(name, float(lrs[i]), float(decays[name][j]), data, epochs, s, device)
    return Grid(np.asarray(lrs), decays, {k: v / len(seeds) for k, v in acc.items()})


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
