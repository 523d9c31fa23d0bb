"""Claims of topics ``optim`` (claims_adam) and ``stochastic_approx`` (claims_sa); importing registers both."""

from __future__ import annotations

from deepnotes.optim import claims_adam, claims_sa  # noqa: F401  (registration happens on import)
