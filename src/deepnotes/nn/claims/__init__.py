"""Claims of the nn topics; importing this module registers them (topics ``activations`` and ``upsampling``)."""

from __future__ import annotations

from deepnotes.nn import claims_activations, claims_upsampling  # noqa: F401  (registration on import)
