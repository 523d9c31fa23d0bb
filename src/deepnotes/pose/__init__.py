"""deepnotes.pose: top-down 2D pose estimation with heatmap, L1 regression and RLE heads.

``data`` reads COCO keypoints and detection results and renders synthetic figures; ``heads`` holds the heads
(the :data:`HEADS` registry); ``flow`` the RealNVP used by RLE's loss; ``model`` joins the shared ResNet and
a head; ``train`` and ``evaluate`` run and score them (``rescoring``: mmpose's person scores and OKS NMS);
``mmpose`` reads and writes mmpose checkpoints; ``cli`` exposes ``deepnotes pose
synth|train|eval|predict|import-mmpose``.

Main entry points: :class:`PoseModel` built from a :class:`PoseConfig` (head names in :data:`HEADS`),
``deepnotes.pose.train.train`` with a :class:`TrainConfig` (the engine task is :class:`PoseTask`;
:class:`RunConfig` is the flat config of ``deepnotes pose train``), :func:`load_run`,
``deepnotes.pose.evaluate.evaluate``, :func:`predict`, :func:`predict_boxes`, :func:`load_coco`,
:func:`load_detections`, :func:`rescore`, :func:`oks_nms`, :func:`import_mmpose` / :func:`from_mmpose` /
:func:`to_mmpose`, :func:`write_dataset` (synthetic figures). The functions ``train`` and ``evaluate`` are
not re-exported here: they share their modules' names, and the modules stay reachable as
``deepnotes.pose.train`` and ``deepnotes.pose.evaluate``.
"""

from deepnotes.pose.config import PoseConfig, RunConfig, TrainConfig
from deepnotes.pose.data.coco import AnnotationError, CocoKeypoints, PersonSample, load_coco
from deepnotes.pose.data.detections import Detection, load_detections
from deepnotes.pose.data.synth import write_dataset
from deepnotes.pose.data.topdown import TopDownDataset
from deepnotes.pose.evaluate import Predictions, predict, predict_box, predict_boxes
from deepnotes.pose.heads import HEADS
from deepnotes.pose.mmpose import from_mmpose, import_mmpose, to_mmpose
from deepnotes.pose.model import PoseModel
from deepnotes.pose.rescoring import oks_nms, rescore
from deepnotes.pose.skeleton import JOINTS, NUM_JOINTS
from deepnotes.pose.train import PoseTask, load_run

__all__ = ["HEADS", "JOINTS", "NUM_JOINTS", "AnnotationError", "CocoKeypoints", "Detection", "PersonSample",
           "PoseConfig", "PoseModel", "PoseTask", "Predictions", "RunConfig", "TopDownDataset", "TrainConfig",
           "from_mmpose", "import_mmpose", "load_coco", "load_detections", "load_run", "oks_nms", "predict",
           "predict_box", "predict_boxes", "rescore", "to_mmpose", "write_dataset"]
