"""Scoring a fine-tuned model: greedy generation, sacreBLEU / ROUGE, and the targets' teacher-forced loss."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.peft.data.encode import MAX_LEN, collate, context_length, encode, separator, target_tokens
from deepnotes.peft.data.tasks import Example


@torch.no_grad()
def generate_texts(model, tokenizer, sources: list[str], max_new_tokens: int = 48,
                   batch_size: int = 16) -> list[str]:
    """Greedy outputs for ``sources`` (decoder-only models read ``source <s>`` left-padded)."""
    model.eval()
    encdec = bool(model.config.is_encoder_decoder)
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i : i + batch_size]
        rows = [tokenizer(s, add_special_tokens=False)["input_ids"][:MAX_LEN]
                + ([] if encdec else [separator(tokenizer)]) for s in chunk]
        n = max(map(len, rows))
        limit = context_length(model)
        new_tokens = max_new_tokens if encdec or not limit else max(1, min(max_new_tokens, limit - n))
        ids = torch.full((len(rows), n), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for j, r in enumerate(rows):  # left padding for decoder-only, right for the encoder
            sl = slice(0, len(r)) if encdec else slice(n - len(r), n)
            ids[j, sl], mask[j, sl] = torch.tensor(r), 1
        gen = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=new_tokens,
                             do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        new = gen if encdec else gen[:, n:]
        outs += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return outs


def score(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Corpus sacreBLEU and mean ROUGE-1/2/L F1 (rouge-score), all in 0..100."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = {k: 0.0 for k in ("rouge1", "rouge2", "rougeL")}
    for h, r in zip(hyps, refs, strict=True):
        for k, v in scorer.score(r, h).items():
            rouge[k] += 100 * v.fmeasure / max(len(refs), 1)
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, **rouge}


@torch.no_grad()
def target_loss(model: nn.Module, tokenizer, examples: list[Example], batch_size: int = 16) -> float:
    """Mean per-token cross-entropy of the reference targets (teacher forcing): a score that moves
    smoothly even when a short run does not yet generate good text."""
    model.eval()
    encdec = bool(model.config.is_encoder_decoder)
    dev = next(model.parameters()).device
    rows = encode(tokenizer, examples, encdec, context=context_length(model))
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        chunk = collate(rows[i : i + batch_size], tokenizer.pad_token_id, encdec)
        batch = {k: v.to(dev) for k, v in chunk.items()}
        n = target_tokens(batch["labels"], encdec)
        total += float(model(**batch).loss) * n
        count += n
    return total / max(count, 1)
