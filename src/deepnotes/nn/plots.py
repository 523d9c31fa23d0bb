"""Figures of the nn topic: every activation with its derivative, and image crops side by side."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepnotes.nn.activations import ACTIVATIONS, get_activation  # noqa: E402


def activation_curves(names: list[str] | None = None, lo: float = -5.0, hi: float = 5.0, n: int = 1001
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (x, f(x), f'(x)); the derivative from autograd (for ``step``: its straight-through one)."""
    out = {}
    for name in names or list(ACTIVATIONS):
        x = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
        y = get_activation(name).double()(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        out[name] = (x.detach().numpy(), y.detach().numpy(), grad.numpy())
    return out


def plot_activations(names: list[str] | None = None) -> plt.Figure:
    """A grid with one panel per activation: f (solid) and f' (dashed)."""
    curves = activation_curves(names)
    cols = 5
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows), squeeze=False)
    for ax, (name, (x, y, dy)) in zip(axes.flat, curves.items(), strict=False):
        ax.plot(x, y, label="f(x)")
        ax.plot(x, dy, "--", label="STE f'(x)" if name in ("step", "sign") else "f'(x)")
        ax.axhline(0, color="0.8", lw=0.6)
        ax.axvline(0, color="0.8", lw=0.6)
        ax.set_ylim(-1.6, 2.6)
        ax.set_title(name)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_crops(rows: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> plt.Figure:
    """One row per image: (row title, [(panel title, HxW array in [0, 1])...])."""
    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.3 * len(rows)), squeeze=False)
    for r, (row_title, panels) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(panels):
                title, img = panels[c]
                ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(title if c else f"{row_title}\n{title}", fontsize=8)
    fig.tight_layout()
    return fig
