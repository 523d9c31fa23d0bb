"""Claims of topics ``optim`` (:mod:`.adam`) and ``stochastic_approx`` (:mod:`.sa`), registered on import."""

from __future__ import annotations

from deepnotes.optim.claims import adam, sa, sa_cost  # noqa: F401  (registration happens on import)
