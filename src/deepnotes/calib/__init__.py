"""deepnotes.calib: multi-camera calibration from chessboard views, one config file, one command per step.

    from deepnotes.calib import load_config, run_all
    run_all(load_config("calib.yaml"), Path("runs/calib"))   # -> runs/calib/calibration.yaml

``config`` validates the YAML; ``frames`` cuts mosaics and videos into per-camera frames; ``detect`` finds
the corners; ``intrinsics``, ``rig`` (joint bundle adjustment) and ``stereo`` calibrate; ``pipeline`` chains
the steps through the output folder; ``synthetic`` renders rigs with known truth; ``cli`` is
``deepnotes calib``.
"""

from deepnotes.calib.config import TEMPLATE, CalibConfig, CalibError, ConfigError, load_config, parse_config
from deepnotes.calib.detect import Detection, detect_camera, detect_image
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
)
from deepnotes.calib.rig import RigObservations, RigResult, calibrate_rig
from deepnotes.calib.stereo import stereo_calibrate
from deepnotes.calib.synthetic import SynthRig, load_truth, synthetic_rig, write_dataset

__all__ = [
    "TEMPLATE",
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
    "write_dataset",
]
