"""Pre-train a byte-level BPE tokenizer and a small GPT-2 (causal LM) or BART (span infilling) model.

The corpus is the Python standard library's docstrings (:mod:`deepnotes.peft.data.corpus`). The result
is a folder that ``from_pretrained`` reads: ``config.json``, ``model.safetensors``, ``tokenizer.json``,
plus ``pretrain.json`` with the loss curve and ``checkpoint.safetensors`` (the training state, for ``--resume``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from deepnotes.core import (
    RunDir,
    atomic_write_json,
    pick_device,
    progress,
    seed_everything,
    set_torch_rng_state,
    torch_rng_state,
)
from deepnotes.peft.models import SPECIAL, VOCAB, build_model


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


def pretrain(arch: str, size: str, out: str | Path, steps: int | None = None, minutes: float | None = None,
             batch_size: int = 16, lr: float = 1e-3, seed: int = 0, device: str = "auto",
             max_chars: int | None = None, save_every: int = 500, resume: bool = False) -> dict:
    """Train tokenizer and model; write them to ``out``; returns the summary also saved as pretrain.json.

    Every ``save_every`` steps (and when it stops) ``out/checkpoint.safetensors`` is replaced atomically with
    the model, optimizer, schedule, data-order and dropout RNG states, so ``resume=True`` continues a killed
    run exactly where its last checkpoint left it (the result equals an uninterrupted run's). ``minutes``
    stops early; a later ``resume`` carries on towards ``steps``.
    """
    from transformers import PreTrainedTokenizerFast

    from deepnotes.optim import AdamW
    from deepnotes.optim.schedule import cosine_with_warmup
    from deepnotes.peft.data.corpus import stdlib_docstrings

    if save_every < 1:
        raise ValueError(f"--save-every must be >= 1, got {save_every}")
    seed_everything(seed)
    dev = pick_device(device)
    out = Path(out)
    run = RunDir(out)  # only its checkpoint: the folder is a save_pretrained one, not a run folder
    steps = steps or (800 if size == "tiny" else 20000)
    asked = {"arch": arch, "size": size, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
             "max_chars": max_chars}
    texts = stdlib_docstrings(max_chars)
    if run.has_checkpoint() and not resume:
        raise FileExistsError(f"{run.checkpoint_path} exists: pass --resume to continue that run, or use another --out")
    resuming = resume and run.has_checkpoint()
    if resuming:
        state, meta = run.load(expect=asked)  # a resume with other arguments names the first that differs
        tokenizer = PreTrainedTokenizerFast.from_pretrained(out, local_files_only=True)
    else:
        tokenizer = train_tokenizer(texts, VOCAB[size])
        tokenizer.save_pretrained(out)  # before training: a resumed run reads it instead of training it again
    model = build_model(arch, size, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                        tokenizer.eos_token_id).to(dev)
    block = 128
    data = _blocks(tokenizer, texts, block)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = cosine_with_warmup(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    done_seconds = 0.0
    if resuming:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        set_torch_rng_state(state["rng"])
        losses, done_seconds = state["losses"].tolist(), float(meta["seconds"])
    start = time.perf_counter()

    def save() -> None:
        seconds = done_seconds + time.perf_counter() - start
        run.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                  "generator": gen.get_state(), "rng": torch_rng_state(),
                  "losses": torch.tensor(losses, dtype=torch.float64)},
                 {**asked, "step": len(losses), "seconds": seconds})

    model.train()
    for step in progress(range(len(losses), steps), desc=f"pretrain {arch}-{size}", total=steps - len(losses)):
        idx = torch.randint(0, len(data), (batch_size,), generator=gen)
        batch = data[idx]
        if arch == "gpt2":
            x = batch.to(dev)
            loss = model(input_ids=x, labels=x).loss
        else:
            src, mask = infill(batch, tokenizer.mask_token_id, tokenizer.pad_token_id, gen)
            loss = model(input_ids=src.to(dev), attention_mask=mask.to(dev), labels=batch.to(dev)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        out_of_time = minutes is not None and time.perf_counter() - start > 60 * minutes
        if (step + 1) % save_every == 0 or step + 1 == steps or out_of_time:
            save()
        if out_of_time:
            break
    if not losses:
        raise ValueError(f"no step was trained (steps={steps})")
    model.eval()
    model.cpu().save_pretrained(out)
    tail = losses[-20:]
    summary = {"arch": arch, "size": size, "steps": len(losses), "target_steps": steps,
               "seconds": done_seconds + time.perf_counter() - start,
               "final_loss": sum(tail) / len(tail), "final_ppl": math.exp(sum(tail) / len(tail)),
               "corpus_chars": sum(map(len, texts)), "vocab_size": len(tokenizer), "loss_curve": losses[::10]}
    atomic_write_json(out / "pretrain.json", summary)
    return summary

