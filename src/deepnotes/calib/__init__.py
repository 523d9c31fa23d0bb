"""deepnotes.calib: multi-camera calibration from chessboard or ChArUco views, one config file, one command
per step.

    from deepnotes.calib import load_config, run_all
    run_all(load_config("calib.yaml"), Path("runs/calib"))   # -> runs/calib/calibration.yaml

``config`` validates the YAML; ``boards`` holds the targets as OpenCV sees them; ``frames`` cuts mosaics
and videos into per-camera frames; ``detect`` finds the corners (with their ids on a ChArUco board);
``intrinsics``, ``rig`` (joint bundle adjustment, solved by ``bundle``) and ``stereo`` calibrate;
``pipeline`` chains the steps through the output folder and says which views were skipped and why;
``synthetic`` renders rigs with known truth (``experiments.truth_errors`` scores a run against it); ``cli``
is ``deepnotes calib``.
"""

from deepnotes.calib.config import (
    TEMPLATE,
    Board,
    CalibConfig,
    CalibError,
    ConfigError,
    load_config,
    parse_config,
)
from deepnotes.calib.detect import Detection, detect_camera, detect_charuco, detect_image
from deepnotes.calib.experiments import truth_errors
from deepnotes.calib.intrinsics import IntrinsicsResult, Views, calibrate_intrinsics
from deepnotes.calib.io_yaml import read_calibration
from deepnotes.calib.pipeline import (
    run_all,
    step_detect,
    step_export,
    step_intrinsics,
    step_rig,
    step_split,
    step_stereo,
    view_summary,
)
from deepnotes.calib.rig import RigObservations, RigResult, calibrate_rig
from deepnotes.calib.stereo import stereo_calibrate
from deepnotes.calib.synthetic import SynthRig, load_truth, synthetic_rig, write_dataset

__all__ = [
    "TEMPLATE",
    "Board",
    "CalibConfig",
    "CalibError",
    "ConfigError",
    "Detection",
    "IntrinsicsResult",
    "RigObservations",
    "RigResult",
    "SynthRig",
    "Views",
    "calibrate_intrinsics",
    "calibrate_rig",
    "detect_camera",
    "detect_charuco",
    "detect_image",
    "load_config",
    "load_truth",
    "parse_config",
    "read_calibration",
    "run_all",
    "step_detect",
    "step_export",
    "step_intrinsics",
    "step_rig",
    "step_split",
    "step_stereo",
    "stereo_calibrate",
    "synthetic_rig",
    "truth_errors",
    "view_summary",
    "write_dataset",
]
