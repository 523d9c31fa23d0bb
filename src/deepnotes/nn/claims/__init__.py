"""Claims of the nn topics (``activations`` and ``upsampling``); importing this package registers them."""

from __future__ import annotations

from deepnotes.nn.claims import activations, perceptron, upsampling  # noqa: F401  (registration on import)
