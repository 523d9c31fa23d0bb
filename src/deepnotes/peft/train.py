"""Fine-tune a base model with one method on a task; evaluate with sacreBLEU / ROUGE; generate.

Run folder: ``config.json`` (what was asked, incl. the base model folder), ``metrics.json`` (one entry
per evaluation), ``checkpoint.safetensors`` (only the trained parameters + optimizer state + step + the
data-order and dropout RNG states, so ``--resume`` continues exactly as if the run had not stopped,
including prefix tuning's MLP), ``adapter/`` (peft layout; ``full``: none) and
``results.json`` (test scores).

``train`` also runs under ``torchrun --nproc_per_node N`` (DistributedDataParallel; ``batch_size`` is per
process): every process draws the same global batch of ``batch_size * N`` examples and trains on its
share, the loss is rescaled by each share's target-token count so the averaged gradient is that of the
global batch's token mean, and rank 0 evaluates and writes the run folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from deepnotes.core import (
    RunDir,
    atomic_write_json,
    pick_device,
    progress,
    seed_everything,
    set_torch_rng_state,
    torch_rng_state,
)
from deepnotes.core.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    cleanup,
    gather_lists,
    global_mean_factor,
    init_distributed,
    local_device,
    shard,
    wrap_ddp,
)
from deepnotes.peft.api import apply, trainable_parameters
from deepnotes.peft.config import AdapterConfig, LoraConfig, PrefixConfig, PromptConfig
from deepnotes.peft.data.tasks import TASKS, Example, make_task, read_jsonl
from deepnotes.peft.io import load_adapter, save_adapter
from deepnotes.peft.models import load_base

METHODS = ("lora", "adapter", "prefix", "prompt", "full")
log = logging.getLogger(__name__)
# must match to resume (the data order follows them); --steps may grow: a resume then trains longer
RESUME_KEYS = ("batch_size", "lr", "seed", "n_train", "world_size")
DEFAULT_EVAL_EVERY = 500  # log + checkpoint cadence in steps: a killed run loses at most this many


def method_config(method: str, model: nn.Module, **opts):
    """The default config of ``method`` for ``model`` (``opts`` override fields)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    encdec = bool(model.config.is_encoder_decoder)
    if method == "lora":
        # every projection: a tiny base needs the capacity (attention-only LoRA barely moved the loss)
        targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"] if encdec else ["c_attn", "c_proj", "c_fc"]
        return LoraConfig(**{"r": 8, "alpha": 16, "target_modules": targets, **opts})
    if method == "adapter":
        return AdapterConfig(**opts)
    if method == "prefix":
        return PrefixConfig(**{"num_virtual_tokens": 10, "hidden_size": 256, **opts})
    if method == "prompt":
        return PromptConfig(**{"num_virtual_tokens": 10, **opts})
    return None


def context_length(model) -> int | None:
    """Positions the model can attend over (GPT-2 ``n_positions``, BART ``max_position_embeddings``)."""
    cfg = model.config
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def encode(tokenizer, examples: list[Example], encdec: bool, max_len: int = 192,
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
        elif context and len(src) + len(tgt) + 2 > context:  # room for <s> and </s>; the source keeps half or more
            room = context - 2
            src = src[:max(room - len(tgt), room // 2)]
            tgt = tgt[:room - len(src)]
        truncated = len(src) < len(src_all) or len(tgt) < len(tgt_all)
        tgt = tgt + [tokenizer.eos_token_id]
        if encdec:
            out.append({"input_ids": src, "labels": tgt, "truncated": truncated})
        else:
            ids = src + [tokenizer.bos_token_id] + tgt
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


@torch.no_grad()
def generate_texts(model, tokenizer, sources: list[str], max_new_tokens: int = 48, batch_size: int = 16) -> list[str]:
    """Greedy outputs for ``sources`` (decoder-only models read ``source <s>`` left-padded)."""
    model.eval()
    encdec = bool(model.config.is_encoder_decoder)
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i : i + batch_size]
        rows = [tokenizer(s, add_special_tokens=False)["input_ids"][:192] + ([] if encdec else [tokenizer.bos_token_id])
                for s in chunk]
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


def target_tokens(labels: torch.Tensor, encdec: bool) -> int:
    """How many target tokens the model's mean loss averages over (decoder-only models shift by one)."""
    return int((labels != -100).sum()) if encdec else int((labels[:, 1:] != -100).sum())


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
        batch = {k: v.to(dev) for k, v in collate(rows[i : i + batch_size], tokenizer.pad_token_id, encdec).items()}
        n = target_tokens(batch["labels"], encdec)
        total += float(model(**batch).loss) * n
        count += n
    return total / max(count, 1)


def trained_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def train(method: str, model_dir: str | Path, task: str, out: str | Path, steps: int = 300, batch_size: int = 8,
          lr: float | None = None, n_train: int = 2000, n_test: int = 100, eval_every: int | None = None,
          seed: int = 0, device: str = "auto", resume: bool = False, options: dict | None = None,
          train_file: str | Path | None = None, test_file: str | Path | None = None) -> dict:
    """Fine-tune ``model_dir`` with ``method`` on ``task``; returns the test scores (also results.json;
    an empty dict on ranks other than 0 under torchrun).

    ``train_file`` / ``test_file``: the user's own data as JSON lines ``{"source": ..., "target": ...}``
    replacing the synthetic task's split; malformed lines are skipped, counted and listed in results.json.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    dev = pick_device(device)
    info = init_distributed(dev)
    try:
        return _train(method, model_dir, task, out, steps, batch_size, lr, n_train, n_test, eval_every, seed,
                      local_device(dev, info), resume, options, train_file, test_file, info)
    finally:
        cleanup(info)


def process_rng(seed: int, info: DistInfo, saved: dict | None = None) -> None:
    """Torch's global RNG (dropout masks) for this process: restored from a checkpoint's ``rng_ranks`` (or,
    for rank 0 of an older checkpoint, its ``rng``), else rank 0 keeps the stream ``seed_everything(seed)``
    started and every other rank gets its own seed: one seed everywhere gave every process the same masks."""
    state = None
    if saved:
        state = saved.get("rng_ranks", {}).get(str(info.rank), saved.get("rng") if info.rank == 0 else None)
    if state is not None:
        set_torch_rng_state(state)
    elif info.rank:
        torch.manual_seed(seed + 1_000_003 * info.rank)


def _train(method, model_dir, task, out, steps, batch_size, lr, n_train, n_test, eval_every, seed, dev, resume,
           options, train_file, test_file, info: DistInfo) -> dict:
    from deepnotes.optim import AdamW
    from deepnotes.optim.schedule import cosine_with_warmup

    seed_everything(seed)
    run = RunDir(Path(out))
    model, tok = load_base(model_dir, dev)
    encdec = bool(model.config.is_encoder_decoder)
    config = method_config(method, model, **(options or {}))
    if config is not None:
        apply(model, config)
    lr = lr if lr is not None else {"full": 5e-4, "lora": 5e-3, "adapter": 5e-3, "prefix": 1e-2, "prompt": 2e-2}[method]
    asked = {"method": method, "model": str(Path(model_dir).resolve()), "task": task, "steps": steps,
             "batch_size": batch_size, "lr": lr, "n_train": n_train, "n_test": n_test, "seed": seed,
             "method_config": asdict(config) if config is not None else None, "world_size": info.world_size}
    report = trainable_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = AdamW(params, lr=lr, weight_decay=0.0)
    sched = cosine_with_warmup(opt, warmup_steps=max(1, steps // 10), total_steps=steps)
    start_step, resumed_rng = 0, (None, None)
    if resume and run.has_checkpoint():
        # the data order and the schedule follow RESUME_KEYS: other values would not continue the run
        state, meta = run.load(str(dev), expect={"method": method, "task": task},
                               expect_if_stored={k: asked[k] for k in RESUME_KEYS})
        own = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in state["trained"].items():
                if n not in own:
                    raise ValueError(f"{run.checkpoint_path}: tensor {n!r} is not in the model; wrong --model?")
                own[n].copy_(t)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_step = int(meta["step"])
        resumed_rng = state.get("generator"), {k: state[k] for k in ("rng", "rng_ranks") if k in state}
    train_examples, skipped = _examples(task, "train", n_train, train_file)
    test, test_skipped = _examples(task, "test", n_test, test_file)
    skipped += test_skipped
    asked.update(train_file=str(train_file) if train_file else None, test_file=str(test_file) if test_file else None)
    if info.is_main:
        run.write_config(asked)
    data = encode(tok, train_examples, encdec, context=context_length(model))
    truncated = sum(r["truncated"] for r in data)
    if truncated:
        log.warning("%d of %d training examples were cut to fit 192 tokens per side or the model's %s positions",
                    truncated, len(data), context_length(model))
    # long enough for the longest training target (a fixed 48 cut half the table2text references short)
    gen_tokens = min(max(len([t for t in r["labels"] if t != -100]) for r in data) + 16, 256)
    gen = torch.Generator().manual_seed(seed + start_step)
    if resumed_rng[0] is not None:  # same batches and dropout masks as a run that never stopped
        gen.set_state(resumed_rng[0].cpu())
    process_rng(seed, info, resumed_rng[1])
    eval_every = eval_every or min(steps, DEFAULT_EVAL_EVERY)
    net = wrap_ddp(model, dev, info)
    t0 = time.perf_counter()
    model.train()
    loss_sum, logged = 0.0, 0
    for step in progress(range(start_step, steps), desc=f"{method} on {task}", total=steps - start_step):
        # the same global batch on every rank (same generator), each rank its share
        idx = shard(torch.randint(0, len(data), (batch_size * info.world_size,), generator=gen).tolist(), info)
        batch = {k: v.to(dev) for k, v in collate([data[i] for i in idx], tok.pad_token_id, encdec).items()}
        loss = net(**batch).loss * global_mean_factor(target_tokens(batch["labels"], encdec), info)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        loss_sum, logged = loss_sum + loss.item() / info.world_size, logged + 1
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            total = all_reduce_sum(torch.tensor([loss_sum], dtype=torch.float64), info).item()
            rng_ranks = gather_lists([torch_rng_state()], info)  # every process's dropout stream, for a resume
            if info.is_main:
                run.log_epoch({"epoch": step + 1, "train_loss": total / logged})
                run.save({"trained": trained_state(model), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "generator": gen.get_state(), "rng": rng_ranks[0],
                          "rng_ranks": {str(r): st for r, st in enumerate(rng_ranks)}},
                         {"method": method, "task": task, "step": step + 1, **{k: asked[k] for k in RESUME_KEYS}})
            barrier(info)
            loss_sum, logged = 0.0, 0
            model.train()
    seconds = time.perf_counter() - t0
    if not info.is_main:
        return {}
    if method == "prefix":
        model.prefix_tuning.fold()  # inference keeps only the prefix table, not the MLP
    if config is not None:
        save_adapter(model, run.path / "adapter")
    test_loss = target_loss(model, tok, test, batch_size)
    hyps = generate_texts(model, tok, [e.source for e in test], max_new_tokens=gen_tokens)
    result = {**score(hyps, [e.target for e in test]), "test_loss": test_loss, "trainable": report.trainable, "total": report.total,
              "max_new_tokens": gen_tokens, "truncated_train_examples": truncated,
              "trainable_percent": report.percent, "train_seconds": seconds,
              "skipped_lines": len(skipped), "skipped": skipped[:100],
              "examples": [{"source": e.source, "reference": e.target, "output": h} for e, h in zip(test[:5], hyps, strict=False)]}
    atomic_write_json(run.path / "results.json", result)
    return result


def _examples(task: str, split: str, n: int, path: str | Path | None) -> tuple[list[Example], list[str]]:
    """The synthetic task's split, or the examples of the user's JSON-lines file (with skipped-line notes)."""
    if path is None:
        return make_task(task, split, n, seed=0), []
    examples, problems = read_jsonl(path)
    if not examples:
        raise ValueError(f"{path}: no usable {split} example (need JSON lines with \"source\" and \"target\")")
    return examples, problems


def load_run(run_dir: str | Path, device: str = "auto"):
    """(model with the trained method inserted, tokenizer, run config) of a finished run."""
    run = RunDir(Path(run_dir))
    asked = run.read_config()
    model, tok = load_base(asked["model"], pick_device(device))
    if asked["method"] == "full":
        state, _ = run.load(str(next(model.parameters()).device), expect={"method": "full"})
        model.load_state_dict(state["trained"], strict=False)
    else:
        load_adapter(model, run.path / "adapter")
    return model.eval(), tok, asked
