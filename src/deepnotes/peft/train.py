"""Fine-tune a base model with one method on a task (on the training engine); evaluate with sacreBLEU /
ROUGE; load a finished run back.

Run folder: ``config.json`` (the resolved :class:`~deepnotes.peft.config.TrainConfig`, incl. the base model
folder, the learning rate and the whole method config, and the process count), ``metrics.json`` (a record
every ``save_every`` steps: ``epoch`` = passes over the training examples, ``step``, ``train_loss``, ``lr``,
``seconds``), ``checkpoint.safetensors`` (only the trained parameters, optimizer and schedule state, the
data-order generator and every process's dropout RNG, so ``--resume`` continues exactly as if the run had not
stopped, prefix tuning's MLP included), ``adapter/`` (peft layout naming the base folder, plus the
tokenizer, so ``peft.AutoPeftModelForCausalLM.from_pretrained(run / "adapter")`` loads it; ``full``: none) and
``results.json`` (test scores).

``train`` also runs under ``torchrun --nproc_per_node N`` (``batch_size`` is per process): every process
draws the same global batch of ``batch_size * N`` examples and trains on its share, the engine weighs each
share's loss by its target-token count so the averaged gradient is that of the global batch's token mean,
and rank 0 evaluates and writes the run folder.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepnotes.core import RunDir, atomic_write_json, pick_device, seed_everything
from deepnotes.core.config import to_plain
from deepnotes.core.distributed import DistInfo, shard
from deepnotes.core.engine import (
    Schedule,
    StepOutput,
    Trainer,
    TrainTask,
    check_fresh,
    distributed,
    process_rng,
)
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.peft.api import apply, trainable_parameters
from deepnotes.peft.config import DEFAULT_SAVE_EVERY, TrainConfig
from deepnotes.peft.data.encode import MAX_LEN, collate, context_length, encode, target_tokens
from deepnotes.peft.data.tasks import Example, make_task, read_jsonl
from deepnotes.peft.evaluate import generate_texts, score, target_loss
from deepnotes.peft.io import load_adapter, save_adapter
from deepnotes.peft.methods import METHODS, method_config
from deepnotes.peft.models import load_base

__all__ = ["METHODS", "RESUME_KEYS", "FineTuneTask", "collate", "encode", "fine_tune", "generate_texts",
           "load_run", "method_config", "process_rng", "score", "target_loss", "train"]

log = logging.getLogger(__name__)
# must match to resume (the data order and the schedule follow them; the engine adds the process count);
# --steps may grow: a resume then trains longer
RESUME_KEYS = ("batch_size", "lr", "seed", "n_train")


class FineTuneTask(TrainTask):
    """Fine-tuning on encoded examples: random global batches drawn with replacement from a seeded
    generator (its state is checkpointed), each rank training on its contiguous share."""

    grad_clip = 1.0
    sync_bn = False  # transformers models have no BatchNorm

    def __init__(self, model: nn.Module, tokenizer, data: list[dict], cfg: TrainConfig, info: DistInfo,
                 device: torch.device) -> None:
        """``cfg``: resolved (``lr``, ``save_every`` and ``method_config`` set, see :func:`resolved`)."""
        self.model, self.tokenizer, self.data, self.info, self.device = model, tokenizer, data, info, device
        self.encdec = bool(model.config.is_encoder_decoder)
        self.seed, self.label = cfg.seed, f"{cfg.method} on {cfg.task}"
        self.global_batch = cfg.batch_size * info.world_size
        trained = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = AdamW(trained, lr=cfg.lr, weight_decay=0.0)
        self.scheduler = cosine_with_warmup(self.optimizer, warmup_steps=max(1, cfg.steps // 10),
                                            total_steps=cfg.steps)
        self.schedule = Schedule(cfg.steps, cfg.save_every, math.ceil(len(data) / self.global_batch))
        self.identity = {"method": cfg.method, "task": cfg.task}
        self.resume_fields = {k: getattr(cfg, k) for k in RESUME_KEYS}
        self.config = to_plain(cfg)
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def batches(self, period: int, first_step: int) -> Iterator[dict[str, torch.Tensor]]:
        # drawn lazily: the generator state a checkpoint stores is that of the steps taken, no more
        while True:
            idx = torch.randint(0, len(self.data), (self.global_batch,), generator=self.generator).tolist()
            rows = [self.data[i] for i in shard(idx, self.info)]  # same global batch everywhere, own share
            yield collate(rows, self.tokenizer.pad_token_id, self.encdec)

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        return len(batch["input_ids"])

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return StepOutput(net(**batch).loss, float(target_tokens(batch["labels"], self.encdec)))

    def model_state(self) -> dict[str, torch.Tensor]:
        """The trained parameters only: the base model is the folder the run names."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.model.named_parameters())
        for n, t in state.items():
            if n not in own:
                raise ValueError(f"checkpoint tensor {n!r} is not in the model; wrong --model?")
            own[n].copy_(t)

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


def train(method: str, model_dir: str | Path, task: str, out: str | Path, steps: int = 300,
          batch_size: int = 8, lr: float | None = None, n_train: int = 2000, n_test: int = 100,
          eval_every: int | None = None, seed: int = 0, device: str = "auto", resume: bool = False,
          options: dict | None = None, train_file: str | Path | None = None,
          test_file: str | Path | None = None, save_every: int | None = None) -> dict:
    """Fine-tune ``model_dir`` with ``method`` on ``task``; returns the test scores (also results.json;
    an empty dict on ranks other than 0 under torchrun).

    ``save_every``: steps between checkpoints (``eval_every`` is its deprecated name); ``options``: fields
    of the method's config that differ from its default. ``train_file`` / ``test_file``: the user's own data
    as JSON lines ``{"source": ..., "target": ...}`` replacing the synthetic task's split; malformed lines are
    skipped, counted and listed in results.json.
    """
    if eval_every is not None:
        warnings.warn("train(eval_every=...) is deprecated; use save_every=", DeprecationWarning,
                      stacklevel=2)
        if save_every is not None and save_every != eval_every:
            raise ValueError(f"eval_every={eval_every} and save_every={save_every} differ; "
                             "give save_every only")
        save_every = eval_every
    opt = lambda p: None if p is None else str(p)  # noqa: E731
    cfg = TrainConfig(method=method, model=str(model_dir), task=task, out=str(out), steps=steps,
                      batch_size=batch_size, lr=lr, n_train=n_train, n_test=n_test, save_every=save_every,
                      seed=seed, device=device, train_file=opt(train_file), test_file=opt(test_file),
                      method_config=options)
    return fine_tune(cfg, resume)


def resolved(cfg: TrainConfig, method_cfg: Any) -> TrainConfig:
    """``cfg`` with what it left to defaults filled in: what config.json stores and a resume compares."""
    lr = METHODS[cfg.method].lr if cfg.lr is None else cfg.lr
    return replace(cfg, model=str(Path(cfg.model).resolve()), lr=lr,
                   save_every=cfg.save_every or min(cfg.steps, DEFAULT_SAVE_EVERY),
                   method_config=asdict(method_cfg) if method_cfg is not None else None)


def fine_tune(cfg: TrainConfig, resume: bool = False, log_fn: Callable[[str], None] | None = None) -> dict:
    """Train as ``cfg`` says (continuing the run folder's checkpoint when ``resume``), then score the test
    split; returns the scores (also ``results.json``; ``{}`` on ranks other than 0 under torchrun)."""
    run = RunDir(Path(cfg.out))
    check_fresh(run, resume)
    train_examples, skipped = _examples(cfg.task, "train", cfg.n_train, cfg.train_file)
    test, test_skipped = _examples(cfg.task, "test", cfg.n_test, cfg.test_file)
    with distributed(pick_device(cfg.device)) as (info, dev):
        seed_everything(cfg.seed)
        model, tok = load_base(cfg.model, dev)
        method_cfg = method_config(cfg.method, model, **cfg.method_options())
        if method_cfg is not None:
            apply(model, method_cfg)
        report = trainable_parameters(model)
        cfg = resolved(cfg, method_cfg)
        data = _encode(tok, model, train_examples)
        t0 = time.perf_counter()
        task = FineTuneTask(model, tok, data, cfg, info, dev)
        Trainer(task, run, info, dev, resume=resume, log_fn=log_fn).fit()
        if not info.is_main:
            return {}
        seconds = time.perf_counter() - t0
        METHODS[cfg.method].finish(model)
        if method_cfg is not None:  # with the tokenizer: AutoPeftModel* and AutoTokenizer read the folder
            save_adapter(model, run.path / "adapter")
            tok.save_pretrained(run.path / "adapter")
        skipped += test_skipped
        result = _results(model, tok, data, test, cfg.batch_size, {
            "trainable": report.trainable, "total": report.total, "trainable_percent": report.percent,
            "train_seconds": seconds, "skipped_lines": len(skipped), "skipped": skipped[:100]})
        atomic_write_json(run.path / "results.json", result)
        return result


def _encode(tok, model: nn.Module, examples: list[Example]) -> list[dict]:
    data = encode(tok, examples, bool(model.config.is_encoder_decoder), context=context_length(model))
    truncated = sum(r["truncated"] for r in data)
    if truncated:
        log.warning("%d of %d training examples were cut to fit %d tokens per side or the model's %s "
                    "positions", truncated, len(data), MAX_LEN, context_length(model))
    return data


def _results(model: nn.Module, tok, data: list[dict], test: list[Example], batch_size: int,
             run_facts: dict[str, Any]) -> dict[str, Any]:
    """Test scores, the test targets' loss, ``run_facts`` (trainable counts, seconds...) and a few outputs of
    the trained model: what results.json holds."""
    # long enough for the longest training target (a fixed 48 cut half the table2text references short)
    gen_tokens = min(max(len([t for t in r["labels"] if t != -100]) for r in data) + 16, 256)
    test_loss = target_loss(model, tok, test, batch_size)
    hyps = generate_texts(model, tok, [e.source for e in test], max_new_tokens=gen_tokens)
    return {**score(hyps, [e.target for e in test]), "test_loss": test_loss, "max_new_tokens": gen_tokens,
            "truncated_train_examples": sum(r["truncated"] for r in data), **run_facts,
            "examples": [{"source": e.source, "reference": e.target, "output": h}
                         for e, h in zip(test[:5], hyps, strict=False)]}


def _examples(task: str, split: str, n: int, path: str | Path | None) -> tuple[list[Example], list[str]]:
    """The synthetic task's split, or the examples of the user's JSON-lines file (with skipped-line notes)."""
    if path is None:
        return make_task(task, split, n, seed=0), []
    examples, problems = read_jsonl(path)
    if not examples:
        raise ValueError(f"{path}: no usable {split} example "
                         "(need JSON lines with \"source\" and \"target\")")
    return examples, problems


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[nn.Module, Any, dict[str, Any]]:
    """(model with the trained method inserted, tokenizer, run config) of a finished run; also reads run
    folders written before the training engine (their checkpoint keeps the weights under ``trained``)."""
    run = RunDir(Path(run_dir))
    asked = run.read_config()
    model, tok = load_base(asked["model"], pick_device(device))
    if METHODS[asked["method"]].config is None:  # nothing inserted: the checkpoint holds the trained weights
        state, _ = run.load(str(next(model.parameters()).device), expect={"method": asked["method"]})
        model.load_state_dict(state["model"] if "model" in state else state["trained"], strict=False)
    else:
        load_adapter(model, run.path / "adapter")
    return model.eval(), tok, asked
