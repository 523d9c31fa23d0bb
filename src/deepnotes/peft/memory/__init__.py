"""Training memory: :func:`estimate` from a model's config alone (a dry run on the meta device, see
:mod:`~deepnotes.peft.memory.estimate`), and what one real step takes (:func:`measure_peak`: the CPU
allocator's events or CUDA's peak; :func:`training_step_bytes`: an accounting of weights, gradients, state
and saved activations)."""

from deepnotes.peft.memory.estimate import (
    ASSUMPTIONS,
    ATTENTION,
    DEVICES,
    DTYPES,
    OPTIMIZERS,
    MemoryEstimate,
    estimate,
    format_table,
    read_config,
)
from deepnotes.peft.memory.measure import measure_peak, training_step_bytes

__all__ = ["ASSUMPTIONS", "ATTENTION", "DEVICES", "DTYPES", "OPTIMIZERS", "MemoryEstimate", "estimate",
           "format_table",
           "measure_peak", "read_config", "training_step_bytes"]
