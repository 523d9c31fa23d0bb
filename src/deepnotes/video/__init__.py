"""deepnotes.video: action recognition with 2D temporal modules (TSN, TSM, TEA, STM, TDN, TAM) and 3D
baselines (C3D, I3D, R(2+1)D); data lists, decoding, sampling, transforms, synthetic datasets.

Main entry points: :func:`build_model` (names in :data:`MODELS`), :func:`train` with a
:class:`TrainConfig`, :func:`evaluate`, :func:`predict`, :func:`synth_dataset`.
"""

from deepnotes.video.config import TrainConfig
from deepnotes.video.data import synth_dataset
from deepnotes.video.models import MODELS, ModelConfig, build_model, model_cost
from deepnotes.video.training import evaluate, predict, train

__all__ = ["MODELS", "ModelConfig", "TrainConfig", "build_model", "evaluate", "model_cost", "predict",
           "synth_dataset", "train"]
