"""Pre-train a byte-level BPE tokenizer and a small GPT-2 (causal LM) or BART (span infilling) model, on
the training engine.

The corpus is the Python standard library's docstrings (:mod:`deepnotes.peft.data.corpus`), cut into blocks
of 128 tokens. The result is a folder that ``from_pretrained`` reads: ``config.json``, ``model.safetensors``,
``tokenizer.json``, plus ``pretrain.json`` (summary and loss curve). While it trains the folder is also a run
folder: ``checkpoint.safetensors`` (every ``save_every`` steps: model, optimizer, schedule, the data-order
generator and the dropout RNG, so ``--resume`` continues exactly where it stopped), ``metrics.json`` and
``pretrain_config.json`` (the run's settings: ``config.json`` is the model's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepnotes.core import RunDir, atomic_write_json, pick_device, seed_everything
from deepnotes.core.config import to_plain
from deepnotes.core.distributed import DistInfo, barrier, shard
from deepnotes.core.engine import Schedule, StepOutput, Trainer, TrainTask, check_fresh, distributed
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.peft.config import PretrainConfig
from deepnotes.peft.data.corpus import stdlib_docstrings
from deepnotes.peft.models import SPECIAL, VOCAB, build_model

BLOCK = 128  # tokens per training sequence
PRETRAIN_CONFIG = "pretrain_config.json"


class PretrainDir(RunDir):
    """A ``save_pretrained`` folder that is also a run folder: ``config.json`` is the model's, so the run's
    settings go to ``pretrain_config.json``."""

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / PRETRAIN_CONFIG, config)

    def read_config(self) -> dict[str, Any]:
        path = self.path / PRETRAIN_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: was {self.path} written by "
                                    "`deepnotes peft pretrain`?")
        return json.loads(path.read_text())


def stored_pretrain_config(out: str | Path) -> dict[str, Any]:
    """The :class:`PretrainConfig` fields a pre-training folder stores (``{}`` when it has none)."""
    path = Path(out) / PRETRAIN_CONFIG
    data = json.loads(path.read_text()) if path.is_file() else {}
    return {k: v for k, v in data.items() if k in PretrainConfig.__dataclass_fields__}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ``<pad> <s> </s> <unk> <mask>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", mask_token="<mask>")


def _blocks(tokenizer, texts: list[str], block: int) -> torch.Tensor:
    """Concatenate all paragraphs (separated by EOS) and cut into ``(N, block)`` token ids."""
    ids: list[int] = []
    for chunk in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(chunk + [tokenizer.eos_token_id])
    n = len(ids) // block
    return torch.tensor(ids[: n * block]).view(n, block)


def infill(batch: torch.Tensor, mask_id: int, pad_id: int, gen: torch.Generator, ratio: float = 0.3):
    """BART's text infilling: spans (mean length 3) covering ~``ratio`` of the tokens each become one mask.

    ``batch: (B, T)`` -> (corrupted input ``(B, T)`` padded with ``pad_id``, attention mask).
    """
    out = torch.full_like(batch, pad_id)
    for i, row in enumerate(batch.tolist()):
        kept, t = [], 0
        while t < len(row):
            if torch.rand((), generator=gen).item() < ratio / 3:
                span = int(torch.poisson(torch.tensor(3.0), generator=gen).item())
                kept.append(mask_id)
                t += max(span, 1)
            else:
                kept.append(row[t])
                t += 1
        out[i, : len(kept)] = torch.tensor(kept)
    return out, (out != pad_id).long()


class PretrainTask(TrainTask):
    """Language-model pre-training on ``(N, BLOCK)`` token blocks: random global batches drawn with
    replacement by a seeded generator (checkpointed), BART's inputs corrupted by span infilling."""

    grad_clip = 1.0
    sync_bn = False

    def __init__(self, model: nn.Module, tokenizer, blocks: torch.Tensor, cfg: PretrainConfig, info: DistInfo,
                 device: torch.device) -> None:
        """``cfg``: resolved (``steps`` set)."""
        self.model, self.tokenizer, self.blocks, self.cfg = model, tokenizer, blocks, cfg
        self.info, self.device, self.seed = info, device, cfg.seed
        self.label = f"pretrain {cfg.arch}-{cfg.size}"
        self.global_batch = cfg.batch_size * info.world_size
        self.optimizer = AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
        self.scheduler = cosine_with_warmup(self.optimizer, warmup_steps=max(1, cfg.steps // 20),
                                            total_steps=cfg.steps)
        self.schedule = Schedule(cfg.steps, cfg.save_every, math.ceil(len(blocks) / self.global_batch))
        self.identity = {"arch": cfg.arch, "size": cfg.size}
        # the schedule's length, the data order and the corpus follow them: a resume must keep them
        self.resume_fields = {k: getattr(cfg, k) for k in ("steps", "batch_size", "lr", "seed", "max_chars")}
        self.config = {k: v for k, v in to_plain(cfg).items() if k != "minutes"}  # a limit of one invocation
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def batches(self, period: int, first_step: int) -> Iterator[dict[str, torch.Tensor]]:
        rows = shard(list(range(self.global_batch)), self.info)  # this rank's share of the global batch
        while True:  # drawn lazily: the generator state a checkpoint stores is that of the steps taken
            idx = torch.randint(0, len(self.blocks), (self.global_batch,), generator=self.generator)
            batch = self.blocks[idx]
            if self.cfg.arch == "gpt2":
                yield {"input_ids": batch[rows], "labels": batch[rows]}
                continue
            tok = self.tokenizer
            src, mask = infill(batch, tok.mask_token_id, tok.pad_token_id, self.generator)
            yield {"input_ids": src[rows], "attention_mask": mask[rows], "labels": batch[rows]}

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        return len(batch["labels"])

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        # every row holds the same number of target tokens: ranks weigh by rows
        out = net(**{k: v.to(self.device) for k, v in batch.items()})
        return StepOutput(out.loss, float(len(batch["labels"])))

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


def pretrain(arch: str, size: str, out: str | Path, steps: int | None = None, minutes: float | None = None,
             batch_size: int = 16, lr: float = 1e-3, seed: int = 0, device: str = "auto",
             max_chars: int | None = None, save_every: int = 500, resume: bool = False) -> dict:
    """Train tokenizer and model; write them to ``out``; returns the summary also saved as pretrain.json.

    Every ``save_every`` steps (and when it stops) ``out/checkpoint.safetensors`` is replaced atomically, so
    ``resume=True`` continues a killed run exactly where its last checkpoint left it (the result equals an
    uninterrupted run's). ``minutes`` stops early; a later ``resume`` carries on towards ``steps``.
    """
    return run_pretraining(PretrainConfig(arch=arch, size=size, out=str(out), steps=steps, minutes=minutes,
                                          batch_size=batch_size, lr=lr, seed=seed, device=device,
                                          max_chars=max_chars, save_every=save_every), resume)


def run_pretraining(cfg: PretrainConfig, resume: bool = False,
                    log_fn: Callable[[str], None] | None = None) -> dict:
    """Pre-train as ``cfg`` says (continuing the folder's checkpoint when ``resume``); returns the summary
    (``{}`` on ranks other than 0 under torchrun)."""
    out = Path(cfg.out)
    run = PretrainDir(out)
    check_fresh(run, resume)
    cfg = replace(cfg, steps=cfg.target_steps)
    texts = stdlib_docstrings(cfg.max_chars)
    with distributed(pick_device(cfg.device)) as (info, dev):
        seed_everything(cfg.seed)
        tokenizer = _tokenizer(out, texts, cfg.size, resume and run.has_checkpoint(), info)
        model = build_model(cfg.arch, cfg.size, len(tokenizer), tokenizer.pad_token_id,
                            tokenizer.bos_token_id, tokenizer.eos_token_id).to(dev)
        task = PretrainTask(model, tokenizer, _blocks(tokenizer, texts, BLOCK), cfg, info, dev)
        limit = None if cfg.minutes is None else 60 * cfg.minutes
        trainer = Trainer(task, run, info, dev, resume=resume, time_limit_s=limit, log_fn=log_fn)
        trainer.fit()
        if not info.is_main:
            return {}
        model.eval()
        model.cpu().save_pretrained(out)
        losses, tail = trainer.losses, trainer.losses[-20:]
        summary = {"arch": cfg.arch, "size": cfg.size, "steps": len(losses), "target_steps": cfg.steps,
                   "seconds": sum(m.get("seconds", 0.0) for m in run.metrics),
                   "final_loss": sum(tail) / len(tail), "final_ppl": math.exp(sum(tail) / len(tail)),
                   "corpus_chars": sum(map(len, texts)), "vocab_size": len(tokenizer),
                   "loss_curve": losses[::10]}
        atomic_write_json(out / "pretrain.json", summary)
        return summary


def _tokenizer(out: Path, texts: list[str], size: str, resuming: bool, info: DistInfo):
    """The tokenizer: trained and saved by rank 0 before training (a resumed run reads it back instead of
    training it again), read from ``out`` by the other ranks."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = None
    if info.is_main and not resuming:
        tokenizer = train_tokenizer(texts, VOCAB[size])
        tokenizer.save_pretrained(out)
    barrier(info)
    if tokenizer is None:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(out, local_files_only=True)
    return tokenizer
