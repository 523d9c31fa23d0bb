"""Claims of the calibration notes, measured on the synthetic renderer (topic ``calib``).

The note's recipe is its own code: ``cornerSubPix(gray, pts, (12, 12), (1, 1), (EPS + COUNT, 30, 0.1))``
after ``findChessboardCorners`` with default flags, then ``calibrateCamera``. The claims measure our library's
departures from it (an adaptive sub-pixel window, a joint bundle adjustment), each against the note's call or
against OpenCV's own multi-camera calibration run both ways.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deepnotes.calib.camera_model import board_points  # noqa: E402
from deepnotes.calib.detect import canonical_order, detect_camera  # noqa: E402
from deepnotes.calib.experiments import (  # noqa: E402
    errors,
    multiview_baseline,
    noisy_observations,
    per_camera_intrinsics,
)
from deepnotes.calib.intrinsics import Views, calibrate_intrinsics  # noqa: E402
from deepnotes.calib.rig import calibrate_rig  # noqa: E402
from deepnotes.calib.synthetic import synthetic_rig, write_dataset  # noqa: E402
from deepnotes.core.claims import ClaimContext, Outcome, claim  # noqa: E402
from deepnotes.core.notes import Source  # noqa: E402
from deepnotes.core.verdict import Test, ratios  # noqa: E402

NOISES = (0.1, 0.3, 0.5)
NOTE_SUBPIX = ("cv2.cornerSubPix(gray, pts, (12, 12), (1, 1), (cv2.TERM_CRITERIA_EPS + "
               "cv2.TERM_CRITERIA_COUNT, 30, 0.1))")
NOTE_CALIBRATE = "det, intr, dist, _, _ = cv2.calibrateCamera(obj_pts, img_pts, self.imgSize, None, No"
NOTE_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.1)


def note_corners(path: str, cols: int, rows: int) -> np.ndarray | None:
    """The note's detection, call for call: ``findChessboardCorners`` with its default flags, then
    ``cornerSubPix`` with half-window (12, 12), zero zone (1, 1) and (EPS + COUNT, 30, 0.1); corners in our
    canonical order (so they pair with the board points). None when the board is not found."""
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    found, pts = cv2.findChessboardCorners(gray, (cols, rows))
    if not found:
        return None
    pts = cv2.cornerSubPix(gray, pts, (12, 12), (1, 1), NOTE_CRITERIA).reshape(-1, 2)
    return canonical_order(gray, pts, cols, rows)


def _window_errors(ctx: ClaimContext, seed: int, n_cams: int,
                   n_frames: int) -> dict[str, tuple[float, float]]:
    """One rendered rig: (focal error %, principal point error px), mean over cameras, for the note's call
    and for our adaptive window, on the same images."""
    rig = synthetic_rig(n_cams, n_frames, (640, 480), seed=seed, depth=(1.0, 3.0))
    folder = ctx.scratch(f"data-{seed}")
    write_dataset(folder, rig, mosaic=False, seed=seed, ss=2)
    b = rig.board
    obj = board_points(b.cols, b.rows, b.square_size)
    out = {}
    for label in ("note", "adaptive"):
        foc, pp = [], []
        for c in rig.cameras:
            files = sorted((folder / "images" / c.name).glob("*.png"))
            if label == "note":
                found = [(p.stem, note_corners(str(p), b.cols, b.rows)) for p in files]
                found = [(f, k) for f, k in found if k is not None]
            else:
                dets = detect_camera([{"frame": p.stem, "path": str(p)} for p in files], b.cols, b.rows,
                                     "classic", "adaptive", 0, workers=0)
                found = [(d.frame, np.asarray(d.corners)) for d in dets if d.found]
            views = Views([f for f, _ in found], [obj] * len(found), [k for _, k in found], c.image_size)
            r = calibrate_intrinsics(c.name, views, max_rounds=0)
            foc.append(100 * abs(r.K[0, 0] - c.K[0, 0]) / c.K[0, 0])
            pp.append(float(np.linalg.norm(r.K[:2, 2] - c.K[:2, 2])))
        out[label] = (float(np.mean(foc)), float(np.mean(pp)))
    return out


@claim(
    "calib.adaptive_subpix_window", "calib",
    "The note's cornerSubPix call (half-window 12x12, zero zone 1x1, 30 iterations / 0.1 px) breaks on small "
    "or slanted boards; a window sized from the detected square size in pixels keeps the focal error small.",
    tests=Test("focal_ratio", "focal error (mean over cameras) with the note's cornerSubPix call / with the "
               "adaptive window, same images, paired by rendered rig", ">", 1.0, scale="log"),
    origin="library",
    source=Source("calib", NOTE_SUBPIX, "The note's sub-pixel refinement: cornerSubPix with a 12x12 "
                  "half-window (a 25x25 window), zero zone (1, 1), stopping after 30 iterations or a move "
                  "below 0.1 px."),
)
def adaptive_window(ctx: ClaimContext) -> Outcome:
    n_cams, n_frames = ctx.pick((2, 14), (4, 40))
    runs = [_window_errors(ctx, seed, n_cams, n_frames) for seed in ctx.seeds(ctx.pick(3, 5))]
    gains = ratios([r["note"][0] for r in runs], [r["adaptive"][0] for r in runs])
    figs, rows = {}, []
    for label in ("note", "adaptive"):
        figs[f"{label}_focal_pct"] = float(np.mean([r[label][0] for r in runs]))
        figs[f"{label}_pp_px"] = float(np.mean([r[label][1] for r in runs]))
        rows += [{"window": label, "rig": i, "focal_error_pct": round(r[label][0], 4),
                  "pp_error_px": round(r[label][1], 3)} for i, r in enumerate(runs)]
    return Outcome(figs, gains, tables={"window": rows},
                   notes=f"{n_cams} camera(s), {n_frames} rendered 640x480 views each, boards 1-3 m away, "
                         f"{len(runs)} rigs (the repeats); the note's detection is its own call, the "
                         "adaptive one is `calib detect`'s (half-window 0.35 x the corner spacing, clipped "
                         "to 2-12).")


@lru_cache(maxsize=64)
def rig_trial(n_frames: int, sigma: float, seed: int) -> dict:
    """One noisy-corner trial on the 4-camera synthetic rig: errors of calibrateMultiview with fixed and with
    free intrinsics and of our joint BA, the BA's predicted std of fx per camera and its fx errors (px)."""
    rig = synthetic_rig(4, n_frames, (640, 480), seed=seed)
    # an independent noise draw per level: the same draw scaled by sigma would make linearity trivially true
    obs = noisy_observations(rig, sigma, seed + 1000 + int(round(sigma * 1000)))
    intr = per_camera_intrinsics(obs, rig)
    res = calibrate_rig("rig", obs, rig.cameras[0].name, intr)
    return {"multiview_fixed": errors(multiview_baseline(obs, rig, intr), rig),
            "multiview_free": errors(multiview_baseline(obs, rig), rig),
            "joint": errors({"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}, rig),
            "fx_err": [res.intrinsics[c.name].K[0, 0] - c.K[0, 0] for c in rig.cameras],
            "fx_std": [res.std[c.name]["fx"] for c in rig.cameras]}


def _trials(ctx: ClaimContext) -> dict[float, list[dict]]:
    """Every trial of the rig claims: noise level -> one trial per seed (shared by both claims)."""
    n_frames, seeds = ctx.pick(12, 40), ctx.seeds(ctx.pick(6, 8))
    return {s: [rig_trial(n_frames, s, seed) for seed in seeds] for s in NOISES}


METHODS = ("multiview_fixed", "multiview_free", "joint")


@claim(
    "calib.joint_ba_vs_multiview", "calib",
    "A joint bundle adjustment of intrinsics, distortion, camera and board poses gives better camera poses "
    "than OpenCV 5's calibrateMultiview, run with the per-camera intrinsics held fixed (CALIB_FIX_INTRINSIC) "
    "and run left to itself (no guess, no flags); the second is reported beside the first.",
    tests=(
        Test("rotation_vs_fixed", "rotation error of calibrateMultiview (fixed intrinsics) / joint BA's, per "
             "trial", ">", 1.0, scale="log"),
        Test("translation_vs_fixed", "translation error of calibrateMultiview (fixed intrinsics) / joint "
             "BA's", ">", 1.0, scale="log"),
        Test("rotation_vs_free", "rotation error of calibrateMultiview (no flags) / joint BA's", ">", 1.0,
             scale="log", decides=False),
        Test("translation_vs_free", "translation error of calibrateMultiview (no flags) / joint BA's",
             ">", 1.0, scale="log", decides=False),
    ),
    origin="library",
    source=Source("calib", NOTE_CALIBRATE, "The note calibrates each camera alone with calibrateCamera (then "
                  "stereo pairs); the joint bundle adjustment over the whole rig is ours."),
)
def joint_vs_multiview(ctx: ClaimContext) -> Outcome:
    trials = _trials(ctx)
    flat = [t for s in NOISES for t in trials[s]]
    samples = {f"{k}_vs_{m}": ratios([t[f"multiview_{m}"][f"{k}_{u}"] for t in flat],
                                     [t["joint"][f"{k}_{u}"] for t in flat])
               for k, u in (("rotation", "deg"), ("translation", "pct")) for m in ("fixed", "free")}
    figs = {"max_focal_pct_free_minus_fixed": max(abs(t["multiview_free"]["focal_pct"]
                                                       - t["multiview_fixed"]["focal_pct"]) for t in flat)}
    rows = []
    for s in NOISES:
        for method in METHODS:
            m = {k: float(np.mean([t[method][k] for t in trials[s]])) for k in trials[s][0][method]}
            figs.update({f"{method}_{k}@{s}": v for k, v in m.items()})
            rows.append({"noise_px": s, "method": method, **{k: round(v, 4) for k, v in m.items()}})
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    for method in METHODS:
        ax[0].plot(NOISES, [figs[f"{method}_rotation_deg@{s}"] for s in NOISES], "o-", label=method)
        ax[1].plot(NOISES, [figs[f"{method}_translation_pct@{s}"] for s in NOISES], "o-", label=method)
    ax[0].set(xlabel="corner noise (px)", ylabel="rotation error (deg)")
    ax[1].set(xlabel="corner noise (px)", ylabel="translation error (% of baseline)")
    ax[0].legend(fontsize=7)
    ctx.save_plot(fig, "pose_errors")
    return Outcome(figs, samples, tables={"pose and intrinsics errors (mean over trials)": rows},
                   notes=f"4 cameras 640x480, {ctx.pick(12, 40)} board poses, {len(trials[NOISES[0]])} rigs "
                         f"per noise level ({len(flat)} trials, the repeats), true corners + Gaussian noise. "
                         "multiview_fixed: calibrateMultiview with CALIB_FIX_INTRINSIC (poses only); "
                         "multiview_free: calibrateMultiview with no guess and no flags; joint: our bundle "
                         "adjustment. OpenCV 5.1.0 returns the same intrinsics both ways (see "
                         "max_focal_pct_free_minus_fixed): its joint stage refines poses only.")


@claim(
    "calib.error_linear_in_noise", "calib",
    "The calibration error grows linearly with corner noise, and the bundle adjustment's covariance "
    "predicts it.",
    tests=(
        Test("exponent_low", "log-log slope of the fx error RMS (over cameras) against corner noise 0.1-0.5 "
             "px, one per rig", ">", 0.5),
        Test("exponent_high", "the same slope (linear growth: 1)", "<", 1.5),
        Test("calibration_low", "mean over cameras and trials of (fx error / BA-predicted fx std)^2 "
             "(1 when the covariance is right)", ">", 0.25, method="bootstrap"),
        Test("calibration_high", "the same mean squared standardised error", "<", 4.0, method="bootstrap"),
    ),
    origin="library",
    source=Source("calib", NOTE_SUBPIX, "The note refines corners to sub-pixel precision; how the "
                  "calibration error follows the remaining corner noise, and whether the bundle adjustment's "
                  "covariance predicts it, is our thesis."),
)
def error_linear(ctx: ClaimContext) -> Outcome:
    trials = _trials(ctx)
    n_rigs = len(trials[NOISES[0]])
    rms = np.array([[float(np.sqrt(np.mean(np.square(trials[s][i]["fx_err"])))) for s in NOISES]
                    for i in range(n_rigs)])  # (rigs, noise levels)
    slopes = [float(np.polyfit(np.log(NOISES), np.log(np.maximum(r, 1e-12)), 1)[0]) for r in rms]
    z2 = [(e / sd) ** 2 for s in NOISES for t in trials[s] for e, sd in zip(t["fx_err"], t["fx_std"],
                                                                             strict=True)]
    measured = rms.mean(axis=0)
    predicted = [float(np.mean([np.mean(t["fx_std"]) for t in trials[s]])) for s in NOISES]
    figs = {"exponent_mean": float(np.mean(slopes)), "mean_z2": float(np.mean(z2))}
    figs.update({f"measured_fx_rms@{s}": float(m) for s, m in zip(NOISES, measured, strict=True)})
    figs.update({f"predicted_fx_std@{s}": p for s, p in zip(NOISES, predicted, strict=True)})
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(NOISES, measured, "o-", label="measured fx error (RMS)")
    ax.plot(NOISES, predicted, "s--", label="predicted std (BA covariance)")
    ax.set(xlabel="corner noise (px)", ylabel="fx error (px)")
    ax.legend()
    ctx.save_plot(fig, "linearity")
    samples = {"exponent_low": slopes, "exponent_high": slopes, "calibration_low": z2, "calibration_high": z2}
    return Outcome(figs, samples, tables={"noise": [
        {"noise_px": s, "measured_rms": round(float(m), 4), "predicted_std": round(p, 4),
         "ratio": round(float(m) / p, 3)} for s, m, p in zip(NOISES, measured, predicted, strict=True)]},
        notes=f"{n_rigs} rigs x 4 cameras per noise level; an independent noise draw per level.")
