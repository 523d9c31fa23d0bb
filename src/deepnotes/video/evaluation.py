"""Scoring a trained video model: validation during training, ``deepnotes video eval`` and ``predict``.

A run folder's checkpoint holds the weights (``model``) and, in its meta, what rebuilds and feeds the model:
``model``, ``model_config``, ``classes`` and ``data`` (how clips were sampled and transformed). Checkpoints
written before the training engine have the same keys, so they are read alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core import RunDir, pick_device, progress
from deepnotes.core.checkpoint import atomic_write_json, read_meta
from deepnotes.core.distributed import DistInfo, all_reduce_sum, gather_lists
from deepnotes.video.data import count_frame_files, make_loader
from deepnotes.video.data.lists import VideoRecord, read_list
from deepnotes.video.data.pipeline import eval_config, make_dataset
from deepnotes.video.dumps import ScoreDump, dump_format, write_dump
from deepnotes.video.metrics import confusion, plot_confusion, summarize, topk_correct
from deepnotes.video.models import build_from_config


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader, num_classes: int, device: torch.device,
                    info: DistInfo = DistInfo(), desc: str = "eval",
                    scores: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """Scores averaged over views after softmax; returns metrics, the confusion matrix and skipped paths.
    Clips are (N, C, T, H, W) or (N, V, C, T, H, W) with V views. Under DDP each rank evaluates its share
    and the counts are summed, so every rank returns the metrics of the whole list. ``scores``, when given,
    receives each scored video's (K,) probabilities under its dataset index (this rank's videos)."""
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    top5, loss_sum, skipped = 0, 0.0, []
    for batch in progress(loader, desc=desc, total=len(loader)):
        skipped += [str(loader.dataset.dataset.records[i].path) for i in batch.skipped]
        if batch.clips is None:
            continue
        clips, labels = batch.clips.to(device), batch.labels.to(device)
        if clips.ndim == 6:  # (N, V, C, T, H, W): every view through the net, softmax, then average
            n, v = clips.shape[:2]
            probs = F.softmax(model(clips.flatten(0, 1)), 1).view(n, v, -1).mean(1)
        else:
            probs = F.softmax(model(clips), 1)
        if scores is not None:
            scores.update(zip(batch.indices, probs.double().cpu().numpy(), strict=True))
        loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
        top5 += topk_correct(probs, labels, 5)
        conf += confusion(probs.argmax(1), labels, num_classes).cpu()
    totals = all_reduce_sum(torch.tensor([top5, loss_sum, len(skipped)], dtype=torch.float64), info)
    conf = all_reduce_sum(conf, info)
    out = summarize(conf, int(totals[0]), float(totals[1]))
    out.update(skipped=int(totals[2]), confusion=conf.tolist(), skipped_paths=gather_lists(skipped, info))
    return out


def load_run(run_dir: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a run folder (in eval mode) and its checkpoint meta."""
    run = RunDir(run_dir)
    if not run.has_checkpoint():
        raise FileNotFoundError(f"{run.checkpoint_path} does not exist; is {run_dir} a finished video train "
                                "run?")
    meta = read_meta(run.checkpoint_path)
    if "model_config" not in meta:
        raise ValueError(f"{run.checkpoint_path} is not a video checkpoint (no model_config in its meta)")
    model = build_from_config(meta["model_config"]).to(device)
    state, _ = run.load(str(device))
    model.load_state_dict(state["model"])
    return model.eval(), meta


def evaluate(run_dir: str | Path, list_path: str | Path, root: str | Path | None = None, clips: int = 1,
             crops: int = 1, batch_size: int = 8, workers: int = 2, device: str = "auto",
             dump: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run on a list; writes ``RUN/eval/<list>.json`` and ``<list>-confusion.png``, and with
    ``dump`` every video's class scores in list order (:mod:`deepnotes.video.dumps`: ``.jsonl`` or ``.npz``).
    Unreadable videos are reported (count and paths; in the dump, a row without scores), not fatal."""
    if dump is not None:
        dump_format(dump)  # a wrong suffix fails before the evaluation, not after it
    dev = pick_device(device)
    model, meta = load_run(run_dir, dev)
    classes = meta["classes"]
    cfg = eval_config(meta["model"], meta["data"], workers=workers)
    records = read_list(list_path, root, len(classes), cfg.list_format)
    ds = make_dataset(cfg, records, False, num_clips=clips, crops=crops)
    per_video: dict[int, np.ndarray] = {}
    res = evaluate_loader(model, make_loader(ds, batch_size, False, workers), len(classes), dev,
                          scores=per_video)
    out_dir = Path(run_dir) / "eval"
    name = Path(list_path).stem
    plot = plot_confusion(np.array(res["confusion"]), classes, out_dir / f"{name}-confusion.png",
                          f"{meta['model']} on {name}")
    res["confusion_plot"] = str(plot)
    res.update(list=str(list_path), views={"clips": clips, "crops": crops})
    if dump is not None:
        res["dump"] = str(write_dump(dump, score_dump(records, per_video, len(classes))))
    atomic_write_json(out_dir / f"{name}.json", res)
    return res


def score_dump(records: list[VideoRecord], scores: dict[int, np.ndarray], num_classes: int) -> ScoreDump:
    """Every record in order with its (K,) scores; a record without scores (unreadable) gets a NaN row and
    the ``unreadable`` flag."""
    missing = np.full(num_classes, np.nan)
    return ScoreDump([str(r.path) for r in records], np.array([r.label for r in records], np.int64),
                     np.stack([scores.get(i, missing) for i in range(len(records))]).reshape(-1, num_classes),
                     np.array([i not in scores for i in range(len(records))]))


def predict(run_dir: str | Path, video: str | Path, clips: int = 1, crops: int = 1, topk: int = 5,
            device: str = "auto") -> list[tuple[str, float]]:
    """Top-k (class name, probability) for one video file or frames folder; unreadable input raises
    :class:`~deepnotes.video.data.VideoReadError`."""
    dev = pick_device(device)
    model, meta = load_run(run_dir, dev)
    cfg = eval_config(meta["model"], meta["data"], workers=0)
    video = Path(video)
    if not video.exists():
        raise FileNotFoundError(f"{video} does not exist")
    total = count_frame_files(video, cfg.frame_template, cfg.start_index) if video.is_dir() else None
    ds = make_dataset(cfg, [VideoRecord(video, 0, total, str(video))], False, num_clips=clips, crops=crops)
    ds.strict = True
    item = ds[0]
    with torch.no_grad():
        probs = F.softmax(model(item["clip"].to(dev)), 1).mean(0)
    scores, idx = probs.topk(min(topk, len(meta["classes"])))
    return [(meta["classes"][i], float(s)) for s, i in zip(scores.tolist(), idx.tolist(), strict=True)]
