"""Examples to token ids and padded batches (the loss masks the source; decoder-only models read
``source <s> target </s>``, ``<s>`` being the end token for tokenizers without a start token)."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.peft.data.tasks import Example

MAX_LEN = 192  # tokens kept of a source and of a target


def context_length(model: nn.Module) -> int | None:
    """Positions the model can attend over (GPT-2 ``n_positions``, BART ``max_position_embeddings``)."""
    cfg = model.config
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def separator(tokenizer) -> int:
    """The token between source and target for a decoder-only model: the tokenizer's ``<s>``, or its end
    token where it has no start token (Qwen's tokenizers)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode(tokenizer, examples: list[Example], encdec: bool, max_len: int = MAX_LEN,
           context: int | None = None) -> list[dict]:
    """Token ids per example. Decoder-only: ``source <s> target </s>`` with the source masked out of the loss.

    Source and target are cut at ``max_len`` tokens and, for a decoder-only model, together at ``context``
    (the target loses its tail; past the context the position table has no entry). A row that was cut has
    ``truncated: True``, so callers can count and report it."""
    out = []
    for ex in examples:
        src_all = tokenizer(ex.source, add_special_tokens=False)["input_ids"]
        tgt_all = tokenizer(" " + ex.target, add_special_tokens=False)["input_ids"]
        src, tgt = src_all[:max_len], tgt_all[:max_len]
        if encdec:
            if context:
                src, tgt = src[:context], tgt[:context - 1]
        elif context and len(src) + len(tgt) + 2 > context:  # room for <s> and </s>; the source keeps half+
            room = context - 2
            src = src[:max(room - len(tgt), room // 2)]
            tgt = tgt[:room - len(src)]
        truncated = len(src) < len(src_all) or len(tgt) < len(tgt_all)
        tgt = tgt + [tokenizer.eos_token_id]
        if encdec:
            out.append({"input_ids": src, "labels": tgt, "truncated": truncated})
        else:
            ids = src + [separator(tokenizer)] + tgt
            out.append({"input_ids": ids, "labels": [-100] * (len(src) + 1) + tgt, "truncated": truncated})
    return out


def collate(rows: list[dict], pad: int, encdec: bool) -> dict[str, torch.Tensor]:
    """Right-pad a batch: ``input_ids, attention_mask, labels`` ``(B, T)`` (-100 where padded)."""
    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), n), pad)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    m = max(len(r["labels"]) for r in rows) if encdec else n
    labels = torch.full((len(rows), m), -100)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        mask[i, : len(r["input_ids"])] = 1
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def target_tokens(labels: torch.Tensor, encdec: bool) -> int:
    """How many target tokens the model's mean loss averages over (decoder-only models shift by one)."""
    return int((labels != -100).sum()) if encdec else int((labels[:, 1:] != -100).sum())
