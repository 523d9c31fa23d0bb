"""deepnotes.video: action recognition with 2D temporal modules (TSN, TSM, TEA, STM, TDN, TAM), 3D baselines
(C3D, I3D, R(2+1)D) and two-stream networks; data lists, decoding, sampling, transforms, synthetic datasets,
optical flow and untrimmed-video detection.

Main entry points: :func:`build_model` (names in the :data:`MODELS` registry), :func:`train` with a
:class:`TrainConfig` (the engine task is :class:`VideoTask`), :func:`evaluate`, :func:`predict`,
:func:`load_run`, :func:`synth_dataset`.
"""

from deepnotes.video.config import TrainConfig
from deepnotes.video.data import synth_dataset
from deepnotes.video.data.pipeline import MODALITIES, make_dataset
from deepnotes.video.evaluation import evaluate, evaluate_loader, load_run, predict
from deepnotes.video.models import MODELS, ModelConfig, build_model, model_cost
from deepnotes.video.training import VideoTask, train
from deepnotes.video.zoo import import_mmaction

__all__ = ["MODALITIES", "MODELS", "ModelConfig", "TrainConfig", "VideoTask", "build_model", "evaluate",
           "evaluate_loader", "import_mmaction", "load_run", "make_dataset", "model_cost", "predict",
           "synth_dataset", "train"]
