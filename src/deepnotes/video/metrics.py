"""Classification metrics from a confusion matrix, and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def topk_correct(probs: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many rows of (N, K) ``probs`` have the label among their ``k`` highest scores."""
    k = min(k, probs.shape[1])
    return int((probs.topk(k, dim=1).indices == labels[:, None]).any(1).sum())


def confusion(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    idx = labels.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes**2).view(num_classes, num_classes)


def summarize(conf: torch.Tensor, top5: int, loss_sum: float) -> dict[str, float]:
    """top-1, top-5, mean class accuracy (mean recall over classes present) and mean loss."""
    conf = conf.double()
    n = conf.sum().item()
    per_class = conf.diag() / conf.sum(1).clamp(min=1)
    present = conf.sum(1) > 0
    return {
        "loss": loss_sum / max(n, 1),
        "top1": conf.diag().sum().item() / max(n, 1),
        "top5": top5 / max(n, 1),
        "mean_class_acc": per_class[present].mean().item() if present.any() else 0.0,
        "n": int(n),
    }


def plot_confusion(conf: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(conf, dtype=float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1 + 0.45 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if conf[i, j]:
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
