"""Pre-train a byte-level BPE tokenizer and a small GPT-2 (causal LM) or BART (span infilling) model.

The corpus is the Python standard library's docstrings (:mod:`deepnotes.peft.data.corpus`). The result
is a folder that ``from_pretrained`` reads: ``config.json``, ``model.safetensors``, ``tokenizer.json``,
plus ``pretrain.json`` with the loss curve.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from deepnotes.core import atomic_write_json, pick_device, progress, seed_everything
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
             max_chars: int | None = None) -> dict:
    """Train tokenizer and model; write them to ``out``; returns the summary also saved as pretrain.json."""
    from deepnotes.optim import AdamW
    from deepnotes.optim.schedule import cosine_with_warmup
    from deepnotes.peft.data.corpus import stdlib_docstrings

    seed_everything(seed)
    dev = pick_device(device)
    out = Path(out)
    texts = stdlib_docstrings(max_chars)
    tokenizer = train_tokenizer(texts, VOCAB[size])
    model = build_model(arch, size, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                        tokenizer.eos_token_id).to(dev)
    block = 128
    data = _blocks(tokenizer, texts, block)
    steps = steps or (800 if size == "tiny" else 20000)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = cosine_with_warmup(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    model.train()
    for _ in progress(range(steps), desc=f"pretrain {arch}-{size}", total=steps):
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
        if minutes is not None and time.perf_counter() - start > 60 * minutes:
            break
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out)
    tokenizer.save_pretrained(out)
    tail = losses[-20:]
    summary = {"arch": arch, "size": size, "steps": len(losses), "seconds": time.perf_counter() - start,
               "final_loss": sum(tail) / len(tail), "final_ppl": math.exp(sum(tail) / len(tail)),
               "corpus_chars": sum(map(len, texts)), "vocab_size": len(tokenizer), "loss_curve": losses[::10]}
    atomic_write_json(out / "pretrain.json", summary)
    return summary
