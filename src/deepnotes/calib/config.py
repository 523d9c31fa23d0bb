"""The calibration config: one YAML file, validated with errors that name the key and say what to do.

Exact keys (other tools read them): ``board: {cols, rows, square_size}`` (inner corners, metres), or
``board: {type: charuco, cols, rows, square_size, marker_size, dictionary}`` (squares, as OpenCV's
``CharucoBoard`` counts them; ``dictionary`` is OpenCV's name, e.g. ``DICT_5X5_100``);
``cameras: [{name, model}]``; ``sources:`` entries ``{type: mosaic, path, layout: [2, 2], cameras: [...]}``,
``{type: folder, path, camera}`` or ``{type: video, path, camera}``; ``rigs: [{name, reference, cameras}]``;
``stereo: [{left, right}]``. Optional tuning sections: ``frames``, ``detect``, ``intrinsics``, ``rig``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import yaml

from deepnotes.core.paths import resolve_inside

MODELS = ("pinhole", "pinhole_rational", "fisheye")
BOARD_TYPES = ("chessboard", "charuco")
MIN_CHARUCO_CORNERS = 6  # a ChArUco view with fewer corners (with their ids) is not used
DETECTORS = ("classic", "sb")
SEARCHES = ("fast", "thorough")
CAMERA_NAME = re.compile(r"[A-Za-z0-9_.-]+")
YAML_NULLS = ("null", "~")
log = logging.getLogger("deepnotes.calib")


class CalibError(ValueError):
    """A problem with the user's data or config that stops a step; the message says what and where."""


class ConfigError(CalibError):
    """A config problem; the message names the file, the key and the fix."""


@dataclass
class Board:
    cols: int  # chessboard: inner corners along x; charuco: squares along x (cv2.aruco.CharucoBoard's count)
    rows: int  # chessboard: inner corners along y; charuco: squares along y
    square_size: float  # metres
    type: str = "chessboard"  # chessboard | charuco
    marker_size: float | None = None  # charuco: side of an ArUco marker (metres), < square_size
    dictionary: str | None = None  # charuco: OpenCV's ArUco dictionary name, e.g. DICT_5X5_100

    @property
    def charuco(self) -> bool:
        return self.type == "charuco"

    @property
    def corner_grid(self) -> tuple[int, int]:
        """(x, y) count of the inner corners the detector reports (a ChArUco board: squares minus one)."""
        return (self.cols - 1, self.rows - 1) if self.charuco else (self.cols, self.rows)

    def describe(self) -> str:
        """How messages name the board: ``9x6`` (a chessboard's inner corners) or ``12x9-square ChArUco``."""
        if self.charuco:
            return f"{self.cols}x{self.rows}-square ChArUco ({self.dictionary})"
        return f"{self.cols}x{self.rows}"


@dataclass
class Camera:
    name: str
    model: str = "pinhole"


@dataclass
class Source:
    type: str  # mosaic | folder | video
    path: Path
    camera: str | None = None  # folder/video
    cameras: list[str] = field(default_factory=list)  # mosaic, row-major
    layout: list[int] = field(default_factory=lambda: [2, 2])  # mosaic [rows, cols]
    crops: list[list[int]] | None = None  # mosaic: per camera [x, y, w, h], overrides layout


@dataclass
class Rig:
    name: str
    reference: str
    cameras: list[str]


@dataclass
class StereoPair:
    left: str
    right: str


@dataclass
class FramesOpts:
    stride: int = 1  # keep every n-th video frame
    blur_threshold: float = 20.0  # drop views whose variance of Laplacian is below this
    # drop frames whose mean abs difference to the last kept frame is below this (grey levels)
    duplicate_threshold: float = 1.0


@dataclass
class DetectOpts:
    detector: str = "classic"  # classic (findChessboardCorners + cornerSubPix) | sb (findChessboardCornersSB)
    subpix_window: str | int = "adaptive"  # "adaptive" (from the square size in pixels) or a fixed half-size
    # classic chessboards: fast (a global threshold, then adaptive ones on a half-size copy) or thorough
    # (OpenCV's adaptive search on the full image: finds small, unevenly lit boards; ~10x slower on frames
    # without a whole board)
    search: str = "fast"
    # detection threads (and cameras calibrated at once by the intrinsics step): None (left out) = one per
    # core, 0 = in this process, N = N threads; the CLI's --workers overrides it
    workers: int | None = None
    overlays: bool = True


@dataclass
class IntrinsicsOpts:
    min_views: int = 5
    outlier_factor: float = 3.0  # view rejected when its RMS > median + factor * 1.4826 * MAD
    max_rejection_rounds: int = 3


@dataclass
class RigOpts:
    loss: str = "huber"  # scipy least_squares loss
    loss_scale: float = 1.0  # pixels
    outlier_px: float = 3.0  # corners with a residual above max(outlier_px, 5 robust sigma) are dropped


@dataclass
class CalibConfig:
    board: Board
    cameras: list[Camera]
    sources: list[Source]
    rigs: list[Rig] = field(default_factory=list)
    stereo: list[StereoPair] = field(default_factory=list)
    frames: FramesOpts = field(default_factory=FramesOpts)
    detect: DetectOpts = field(default_factory=DetectOpts)
    intrinsics: IntrinsicsOpts = field(default_factory=IntrinsicsOpts)
    rig: RigOpts = field(default_factory=RigOpts)
    path: Path | None = None  # the config file (sources resolve relative to its folder)

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise ConfigError(f"unknown camera {name!r}; cameras are {[c.name for c in self.cameras]}")


TEMPLATE = """\
# deepnotes calib config. Paths are relative to this file's folder.
board:
  cols: 9            # inner corners along the board's x axis
  rows: 6            # inner corners along y
  square_size: 0.025 # metres
# a ChArUco board instead (views that show part of it still count; cols/rows count SQUARES, as OpenCV's
# CharucoBoard does; dictionary: OpenCV's name):
# board: {type: charuco, cols: 10, rows: 7, square_size: 0.04, marker_size: 0.03, dictionary: DICT_5X5_100}
cameras:             # model: pinhole (k1 k2 p1 p2 k3), pinhole_rational (8 coefficients) or fisheye
  - {name: cam0, model: pinhole}
  - {name: cam1, model: pinhole}
  - {name: cam2, model: pinhole}
  - {name: cam3, model: pinhole}
sources:
  # a four-way recording: a video file or a folder of mosaic images, views row-major in a 2x2 grid
  - {type: mosaic, path: recordings/fourway.mp4, layout: [2, 2], cameras: [cam0, cam1, cam2, cam3]}
  # optional per-view crop rectangles [x, y, w, h] instead of an even split:
  #   crops: [[0, 0, 640, 480], [640, 0, 640, 480], [0, 480, 640, 480], [640, 480, 640, 480]]
  # one camera per folder of images or per video (frames pair up across cameras by file name / index):
  # - {type: folder, path: images/cam0, camera: cam0}
  # - {type: video, path: videos/cam0.mp4, camera: cam0}
rigs:
  - {name: rig, reference: cam0, cameras: [cam0, cam1, cam2, cam3]}
stereo:
  - {left: cam0, right: cam1}
# optional tuning (defaults shown)
frames: {stride: 1, blur_threshold: 20.0, duplicate_threshold: 1.0}
# detect.workers: threads for detection; null (or left out) = all cores, 0 = in this process
# detect.search: fast, or thorough (OpenCV's full search on every frame: slower, finds more small boards)
detect: {detector: classic, subpix_window: adaptive, search: fast, workers: null, overlays: true}
intrinsics: {min_views: 5, outlier_factor: 3.0, max_rejection_rounds: 3}
rig: {loss: huber, loss_scale: 1.0, outlier_px: 3.0}
"""


def _where(src: str, key: str) -> str:
    return f"{src}: {key}"


def _expect_map(value: Any, src: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(src, key)} must be a mapping, got {type(value).__name__}")
    return value


def _build(cls: type, value: Any, src: str, key: str) -> Any:
    """Build dataclass ``cls`` from mapping ``value``; unknown keys, missing keys, wrong types are errors."""
    value = _expect_map(value, src, key)
    known = {f.name: f for f in fields(cls) if f.name != "path" or cls is Source}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{_where(src, key)}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{_where(src, f'{key}.{name}')} is missing (required)")
            continue
        kwargs[name] = _check_type(value[name], f.type, src, f"{key}.{name}")
    return cls(**kwargs)


def _check_type(v: Any, annot: Any, src: str, key: str) -> Any:
    annot = str(annot)
    if annot.endswith(" | None"):
        if v is None:
            return None
        annot = annot[: -len(" | None")]
    if annot == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"{_where(src, key)} must be an integer, got {v!r}")
    elif annot == "float":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError(f"{_where(src, key)} must be a number, got {v!r}")
        v = float(v)
    elif annot == "str":
        if not isinstance(v, str):
            raise ConfigError(f"{_where(src, key)} must be a string, got {v!r}")
    elif annot == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{_where(src, key)} must be true or false, got {v!r}")
    elif annot.startswith("list[str]"):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{_where(src, key)} must be a list of names, got {v!r}")
    elif annot.startswith("list[int]"):
        if not isinstance(v, list) or not all(isinstance(x, int) for x in v):
            raise ConfigError(f"{_where(src, key)} must be a list of integers, got {v!r}")
    elif annot.startswith("list[list[int]]"):
        ok = isinstance(v, list) and all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(x, int) for x in r) for r in v
        )
        if not ok:
            raise ConfigError(f"{_where(src, key)} must be a list of [x, y, w, h] integer rectangles, "
                              f"got {v!r}")
    elif annot == "str | int":
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ConfigError(f"{_where(src, key)} must be 'adaptive' or an integer half-size, got {v!r}")
    elif annot == "Path":
        if not isinstance(v, str):
            raise ConfigError(f"{_where(src, key)} must be a path string, got {v!r}")
        v = Path(v)
    return v


def _list(raw: dict, key: str, src: str, required: bool) -> list:
    if key not in raw:
        if required:
            raise ConfigError(f"{_where(src, key)} is missing (required); see `deepnotes calib init`")
        return []
    value = raw[key]
    if not isinstance(value, list) or (required and not value):
        raise ConfigError(f"{_where(src, key)} must be a non-empty list")
    return value


def parse_config(raw: Any, src: str = "<config>", base: Path | None = None,
                 check_files: bool = True) -> CalibConfig:
    """Validate a parsed YAML mapping into a :class:`CalibConfig`; sources resolve in folder ``base``."""
    raw = _expect_map(raw, src, "top level")
    top = {"board", "cameras", "sources", "rigs", "stereo", "frames", "detect", "intrinsics", "rig"}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{src}: unknown top-level key(s) {unknown}; valid keys: {sorted(top)}")
    if "board" not in raw:
        raise ConfigError(f"{_where(src, 'board')} is missing (required)")
    board = _build(Board, raw["board"], src, "board")
    check_board(board, src)
    cameras = _parse_cameras(raw, src)
    names = [c.name for c in cameras]
    sources = _parse_sources(raw, src, names, base or Path.cwd(), check_files)
    rigs = _parse_rigs(raw, src, names)
    pairs = _parse_stereo(raw, src, names)
    return CalibConfig(board=board, cameras=cameras, sources=sources, rigs=rigs, stereo=pairs,
                       **_parse_options(raw, src))


def aruco_dictionaries() -> dict[str, int]:
    """OpenCV's predefined ArUco dictionaries: name -> number of markers."""
    names = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_") and n.upper() == n)
    return {n: len(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, n)).bytesList) for n in names}


def check_board(board: Board, src: str = "<config>") -> None:
    """Range checks of ``board`` for its type; the error names the key."""
    if board.type not in BOARD_TYPES:
        raise ConfigError(f"{_where(src, 'board.type')}: {board.type!r} is not one of {list(BOARD_TYPES)}")
    if board.square_size <= 0:
        raise ConfigError(f"{_where(src, 'board.square_size')} must be > 0 (metres), got {board.square_size}")
    if not board.charuco:
        for key in ("marker_size", "dictionary"):
            if getattr(board, key) is not None:
                raise ConfigError(f"{_where(src, 'board.' + key)} belongs to a ChArUco board; add "
                                  "`type: charuco` or remove it")
        if board.cols < 2 or board.rows < 2:
            raise ConfigError(f"{_where(src, 'board')}: cols and rows must be >= 2 inner corners")
        return
    _check_charuco(board, src)


def _check_charuco(board: Board, src: str) -> None:
    nx, ny = board.corner_grid
    if min(board.cols, board.rows) < 2 or nx * ny < MIN_CHARUCO_CORNERS:
        raise ConfigError(f"{_where(src, 'board.cols and board.rows')}: a ChArUco board of "
                          f"{board.cols}x{board.rows} "
                          f"squares has {max(nx, 0) * max(ny, 0)} inner corners; a view needs "
                          f"{MIN_CHARUCO_CORNERS} (cols and rows count squares, not inner corners)")
    if board.marker_size is None:
        raise ConfigError(f"{_where(src, 'board.marker_size')} is missing (required for type charuco: the "
                          "side of an ArUco marker, metres)")
    if not 0 < board.marker_size < board.square_size:
        raise ConfigError(f"{_where(src, 'board.marker_size')} must lie between 0 and square_size "
                          f"({board.square_size}), got {board.marker_size}")
    known = aruco_dictionaries()
    if board.dictionary not in known:
        raise ConfigError(f"{_where(src, 'board.dictionary')}: {board.dictionary!r} is not an OpenCV ArUco "
                          f"dictionary; valid: {', '.join(known)}")
    needed = board.cols * board.rows // 2
    if known[board.dictionary] < needed:
        raise ConfigError(f"{_where(src, 'board.dictionary')}: {board.dictionary} has "
                          f"{known[board.dictionary]} markers, a {board.cols}x{board.rows} board needs "
                          f"{needed}")


def _known_camera(names: list[str], name: str, src: str, key: str) -> None:
    if name not in names:
        raise ConfigError(f"{_where(src, key)}: camera {name!r} is not declared under cameras ({names})")


def _parse_cameras(raw: dict, src: str) -> list[Camera]:
    """``cameras``: unique names that are safe as folder and file names, and a known lens model each."""
    cameras = [_build(Camera, c, src, f"cameras[{i}]")
               for i, c in enumerate(_list(raw, "cameras", src, True))]
    names = [c.name for c in cameras]
    for i, name in enumerate(names):  # names become folder and file names under the output directory
        key = _where(src, f"cameras[{i}].name")
        if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name) or set(name) == {"."}:
            raise ConfigError(f"{key}: {name!r} is not a valid camera name; use letters, digits, '_', '-' "
                              "and '.' (it names folders and files under the output directory)")
        if name.lower() in YAML_NULLS:  # OpenCV writes it unquoted and reads it back as an empty name
            raise ConfigError(f"{key}: {name!r} reads back as no name from the calibration YAML; choose "
                              "another camera name")
    if len(set(names)) != len(names):
        raise ConfigError(f"{_where(src, 'cameras')}: duplicate camera names in {names}")
    for i, c in enumerate(cameras):
        if c.model not in MODELS:
            raise ConfigError(f"{_where(src, f'cameras[{i}].model')}: {c.model!r} is not one of "
                              f"{list(MODELS)}")
    return cameras


def _parse_source(s: Any, src: str, key: str, names: list[str], base: Path, check_files: bool) -> Source:
    """One ``sources`` entry: its type, an existing path (relative to ``base``), and the cameras it feeds."""
    source = _build(Source, s, src, key)
    if source.type not in ("mosaic", "folder", "video"):
        raise ConfigError(f"{_where(src, key + '.type')}: {source.type!r} is not mosaic, folder or video")
    source.path = resolve_inside(base, source.path) if not source.path.is_absolute() else source.path
    if check_files and not source.path.exists():
        raise ConfigError(f"{_where(src, key + '.path')}: {source.path} does not exist")
    if source.type != "mosaic":
        if source.camera is None:
            raise ConfigError(f"{_where(src, key + '.camera')} is missing (required for type {source.type})")
        _known_camera(names, source.camera, src, key + ".camera")
        return source
    if len(source.layout) != 2 or min(source.layout) < 1:
        raise ConfigError(f"{_where(src, key + '.layout')} must be [rows, cols], got {source.layout}")
    expected = source.layout[0] * source.layout[1] if source.crops is None else len(source.crops)
    if len(source.cameras) != expected:
        raise ConfigError(f"{_where(src, key + '.cameras')}: {len(source.cameras)} names for {expected} "
                          "views (one name per view, row-major)")
    for c in source.cameras:
        _known_camera(names, c, src, key + ".cameras")
    return source


def _parse_sources(raw: dict, src: str, names: list[str], base: Path, check_files: bool) -> list[Source]:
    sources = [_parse_source(s, src, f"sources[{i}]", names, base, check_files)
               for i, s in enumerate(_list(raw, "sources", src, True))]
    fed_by: dict[str, int] = {}
    for i, source in enumerate(sources):
        for cam in source.cameras if source.type == "mosaic" else [source.camera]:
            if cam in fed_by:  # frame ids restart per source: the second would overwrite the first's frames
                raise ConfigError(f"{_where(src, f'sources[{i}]')}: camera {cam!r} is already fed by "
                                  f"sources[{fed_by[cam]}]; one source per camera (put the images in one "
                                  "folder, or declare a second camera)")
            fed_by[cam] = i
    return sources


def _parse_rigs(raw: dict, src: str, names: list[str]) -> list[Rig]:
    rigs = [_build(Rig, r, src, f"rigs[{i}]") for i, r in enumerate(_list(raw, "rigs", src, False))]
    for i, r in enumerate(rigs):
        for c in r.cameras:
            _known_camera(names, c, src, f"rigs[{i}].cameras")
        if r.reference not in r.cameras:
            raise ConfigError(f"{_where(src, f'rigs[{i}].reference')}: {r.reference!r} is not in the rig's "
                              "cameras")
        if len(set(r.cameras)) != len(r.cameras):
            raise ConfigError(f"{_where(src, f'rigs[{i}].cameras')}: {r.cameras} lists a camera twice")
    return rigs


def _parse_stereo(raw: dict, src: str, names: list[str]) -> list[StereoPair]:
    pairs = [_build(StereoPair, p, src, f"stereo[{i}]")
             for i, p in enumerate(_list(raw, "stereo", src, False))]
    for i, p in enumerate(pairs):
        _known_camera(names, p.left, src, f"stereo[{i}].left")
        _known_camera(names, p.right, src, f"stereo[{i}].right")
        if p.left == p.right:
            raise ConfigError(f"{_where(src, f'stereo[{i}]')}: left and right are both {p.left!r}; a stereo "
                              "pair is two cameras")
    return pairs


def _parse_options(raw: dict, src: str) -> dict[str, Any]:
    """The optional tuning sections (``frames``, ``detect``, ``intrinsics``, ``rig``), range-checked."""
    sections = (("frames", FramesOpts), ("detect", DetectOpts), ("intrinsics", IntrinsicsOpts),
                ("rig", RigOpts))
    opts = {k: _build(cls, raw.get(k, {}) or {}, src, k) for k, cls in sections}
    frames, detect = opts["frames"], opts["detect"]
    if frames.stride < 1:
        raise ConfigError(f"{_where(src, 'frames.stride')} must be >= 1 (keep every n-th frame), "
                          f"got {frames.stride}")
    for key in ("blur_threshold", "duplicate_threshold"):
        if getattr(frames, key) < 0:
            raise ConfigError(f"{_where(src, 'frames.' + key)} must be >= 0 (0 turns the check off)")
    if detect.detector not in DETECTORS:
        raise ConfigError(f"{_where(src, 'detect.detector')}: {detect.detector!r} not in {list(DETECTORS)}")
    if detect.search not in SEARCHES:
        raise ConfigError(f"{_where(src, 'detect.search')}: {detect.search!r} not in {list(SEARCHES)}")
    win = detect.subpix_window
    if isinstance(win, str) and win != "adaptive" or isinstance(win, int) and win < 1:
        raise ConfigError(f"{_where(src, 'detect.subpix_window')}: use 'adaptive' or a half-size >= 1, "
                          f"got {win!r}")
    if detect.workers is not None and detect.workers < 0:
        raise ConfigError(f"{_where(src, 'detect.workers')} must be >= 0 (0: detect in this process; "
                          f"leave it out or null for all cores), got {detect.workers}")
    if detect.workers == 0:  # meant "all cores" before this release: an old config would silently slow down
        log.warning("%s: detect.workers: 0 now detects in this process, one image after another (it meant "
                    "all cores before this release); leave the key out for one thread per core", src)
    if opts["intrinsics"].min_views < 3:
        raise ConfigError(f"{_where(src, 'intrinsics.min_views')} must be >= 3")
    return opts


def load_config(path: str | Path, check_files: bool = True) -> CalibConfig:
    """Read and validate a config file (``yaml.safe_load``); sources resolve relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; create one with `deepnotes calib init DIR`")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({exc})") from exc
    cfg = parse_config(raw, src=str(path), base=path.parent, check_files=check_files)
    cfg.path = path
    return cfg


def dump_config(cfg: CalibConfig, base: Path) -> str:
    """The YAML text of ``cfg`` with source paths relative to ``base`` (used by the synthetic data writer)."""
    def src(s: Source) -> dict:
        d: dict[str, Any] = {"type": s.type, "path": str(Path(s.path).relative_to(base))}
        if s.type == "mosaic":
            d.update(layout=list(s.layout), cameras=list(s.cameras))
            if s.crops is not None:
                d["crops"] = s.crops
        else:
            d["camera"] = s.camera
        return d

    raw = {
        "board": {k: v for k, v in vars(cfg.board).items() if v is not None},
        "cameras": [vars(c) for c in cfg.cameras],
        "sources": [src(s) for s in cfg.sources],
        "rigs": [vars(r) for r in cfg.rigs],
        "stereo": [vars(p) for p in cfg.stereo],
        "frames": vars(cfg.frames),
        "detect": vars(cfg.detect),
        "intrinsics": vars(cfg.intrinsics),
        "rig": vars(cfg.rig),
    }
    return yaml.safe_dump(raw, sort_keys=False)
