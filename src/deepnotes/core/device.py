"""Device choice: never hard-code one."""

from __future__ import annotations

import torch

VALID = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """Return ``cuda`` if present, then ``mps``, then ``cpu``; or the device named (``cuda:1`` works).

    A named device that is not available is an error rather than a silent fall-back to CPU.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in VALID:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(VALID)} (cuda:N also works)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or "
                         "auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps was asked for but is not available; use --device cpu or auto")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for timing); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
