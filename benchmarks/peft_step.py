"""LoRA training step and inference latency: deepnotes.peft against HF peft on the same GPT-2, Qwen2 or
LLaMA (transformers' own model code, random weights).

    python benchmarks/peft_step.py --device cpu --layers 6 --width 384 --batch 8 --seq 128
    python benchmarks/peft_step.py --device cuda --layers 12 --width 768 --batch 8 --seq 512 --bf16
    python benchmarks/peft_step.py --device cpu --layers 12 --width 64 --vocab 1000 --batch 1 --seq 16
    python benchmarks/peft_step.py --arch qwen2 --device cpu --layers 4 --width 256 --vocab 2000 --batch 4 \
        --seq 64 --kv-heads 2

``--arch qwen2`` / ``llama``: heads of 64 dimensions, ``--kv-heads`` key/value heads (grouped-query attention
when fewer than the heads), an MLP of ``--intermediate`` (default 8/3 of the width, as LLaMA); LoRA goes on
``--targets`` (default: the architecture's default targets of ``peft train``: every attention and MLP
projection).

``--unfused`` adds rows of our LoRA with every layer computing alone (no shared-input groups: LLaMA's q/k/v
and gate/up share one dropout mask and one ``A`` product while training with dropout,
``methods/lora/fused.py``).
Under load from other jobs time with one thread (``OMP_NUM_THREADS=1``): two threads on a busy 2-core machine
give meaningless figures.

The last one is a CPU stand-in for a GPU run: the model is so small that the step time is the host's time
(Python, dispatch, autograd), which is also what bounds a GPT-2 124M step on an H200 in eager mode.

Prints one table: full fine-tuning, peft LoRA, our LoRA (same config, same batch) for the train step
(forward + backward + AdamW), and inference of the base, our LoRA merged/unmerged and peft unmerged.
The "backward floor" row trains only the first block's LayerNorm: gradients still flow back through every
layer (input gradients, no weight gradients), which any method adapting every layer must also compute, so
no LoRA step can be faster than it.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from deepnotes.core import pick_device
from deepnotes.core.timing import print_kernel_profile, time_interleaved
from deepnotes.peft.methods.lora.layer import LoraLayer
from deepnotes.peft.methods.targets import LAYOUTS

LLAMA_LIKE = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def build(args, device):
    torch.manual_seed(0)
    heads = args.width // 64
    if args.arch == "gpt2":
        cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=heads, vocab_size=args.vocab,
                         n_positions=max(1024, args.seq), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return GPT2LMHeadModel(cfg).to(device)
    config_cls, model_cls = LLAMA_LIKE[args.arch]
    cfg = config_cls(num_hidden_layers=args.layers, hidden_size=args.width, num_attention_heads=heads,
                     num_key_value_heads=args.kv_heads or heads, vocab_size=args.vocab,
                     intermediate_size=args.intermediate or 8 * args.width // 3,
                     max_position_embeddings=max(1024, args.seq), tie_word_embeddings=args.arch == "qwen2")
    return model_cls(cfg).to(device)


def first_norm(model):
    """The first block's first norm: what the "backward floor" row trains."""
    if isinstance(model, GPT2LMHeadModel):
        return model.transformer.h[0].ln_1
    return model.model.layers[0].input_layernorm


def peak(device, fn):
    if device.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**30


def describe(args) -> str:
    heads = args.width // 64
    if args.arch == "gpt2":
        return f"GPT-2 {args.layers}x{args.width}"
    return (f"{args.arch} {args.layers}x{args.width} ({heads} heads, {args.kv_heads or heads} key/value "
            f"heads, MLP {args.intermediate or 8 * args.width // 3})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("gpt2", *LLAMA_LIKE), default="gpt2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--width", type=int, default=384, help="model width, a multiple of 64 (heads of 64)")
    ap.add_argument("--kv-heads", type=int, default=None, help="qwen2 / llama: key/value heads (default: "
                    "as many as query heads)")
    ap.add_argument("--intermediate", type=int, default=None, help="qwen2 / llama: MLP width (default 8/3 "
                    "of the width)")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--targets", default=None, help="LoRA targets, comma-separated (default: the "
                    "architecture's defaults of `peft train`)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile every model's forward (train steps only; no memory or inference "
                    "rows)")
    ap.add_argument("--unfused", action="store_true",
                    help="also time our LoRA with every layer alone (no shared-input groups)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", action="store_true",
                    help="after timing (eager): kernel time per train step / inference and the top kernels "
                    "(CUDA)")
    args = ap.parse_args()
    if args.width < 64 or args.width % 64:
        ap.error(f"--width {args.width}: must be a positive multiple of 64 (heads of 64 dimensions)")
    if args.kv_heads is not None and (args.width // 64) % args.kv_heads:
        ap.error(f"--kv-heads {args.kv_heads}: must divide the {args.width // 64} heads")
    device = pick_device(args.device)
    targets = args.targets.split(",") if args.targets else list(LAYOUTS[args.arch].lora)
    x = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    fused = {"fused": True}  # torch's fused AdamW on every device, so the optimizer is not what differs

    def step_fn(model, compiled=False):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, **fused)
        forward = torch.compile(model) if compiled else model

        def step():
            with amp():
                loss = forward(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    def infer_fn(model):

        def infer():
            # no KV cache: it is not used, and under compile it recompiles per layer
            with torch.no_grad(), amp():
                model(input_ids=x, use_cache=False)
        return infer

    import peft
    from deepnotes import peft as dpeft

    dropouts = sorted({args.dropout, 0.0}, reverse=True)

    def peft_lora(dropout):
        return peft.get_peft_model(build(args, device), peft.LoraConfig(
            r=args.r, lora_alpha=2 * args.r, lora_dropout=dropout, target_modules=targets,
            fan_in_fan_out=args.arch == "gpt2"))  # GPT-2's Conv1D stores its weight input-first

    def ours_lora(dropout, fuse=True):
        model = dpeft.apply(build(args, device), dpeft.LoraConfig(r=args.r, alpha=2 * args.r, dropout=dropout,
                                                                    target_modules=targets))
        for m in model.modules():
            if isinstance(m, LoraLayer):
                m.fuse = fuse  # False: the layer never joins its siblings' group
        return model

    def floor_model():
        model = build(args, device)
        model.requires_grad_(False)
        first_norm(model).requires_grad_(True)
        return model

    makers = {"train step: full fine-tuning": lambda: build(args, device),
              "train step: backward floor (frozen)": floor_model}
    for d in dropouts:
        makers[f"train step: peft LoRA (dropout {d})"] = lambda d=d: peft_lora(d)
        makers[f"train step: ours LoRA (dropout {d})"] = lambda d=d: ours_lora(d)
        if args.unfused:
            makers[f"train step: ours LoRA unfused (dropout {d})"] = lambda d=d: ours_lora(d, fuse=False)

    if args.compile:  # fused kernels instead of one launch per op: the LoRA branch's extra ops mostly vanish
        train = {name: step_fn(make(), compiled=True) for name, make in makers.items()}
        step = time_interleaved(train, device, args.warmup, args.repeat)
        print(f"# {describe(args)}, batch {args.batch}x{args.seq}, LoRA r={args.r}, "
              f"torch.compile, device {device}{', bf16' if args.bf16 else ''}")
        for name, ms in step.items():
            print(f"{name:45s} {ms:9.1f}  ({ms / step['train step: full fine-tuning']:.2f}x full)")
        # inference compiled too: with launches fused, what is left of the unmerged adapters' overhead
        infer_models = {"inference: base": build(args, device),
                        "inference: ours LoRA unmerged": ours_lora(0.0),
                        "inference: peft LoRA unmerged": peft_lora(0.0)}
        for m in infer_models.values():
            m.eval()
        inf = time_interleaved({name: infer_fn(torch.compile(m)) for name, m in infer_models.items()}, device,
                               args.warmup, args.repeat)
        for name, ms in inf.items():
            print(f"{name:45s} {ms:9.1f}  ({100 * (ms / inf['inference: base'] - 1):+.1f}%)")
        return
    # peak memory: each variant alone on the device (weights, grads, optimizer state, activations)
    peaks = {}
    for name, make in makers.items():
        f = step_fn(make())
        f()
        peaks[name] = peak(device, f)
        del f
    # timing: every variant built first and all timed round-robin, so that machine load hits them alike
    models = {name: make() for name, make in makers.items()}
    train = {name: step_fn(m) for name, m in models.items()}
    merged = ours_lora(0.0)
    dpeft.merge(merged)  # weights merged, wrappers kept (can unmerge)
    unloaded = dpeft.merge_and_unload(ours_lora(0.0))  # a plain transformers model again
    infer = {"inference: base": infer_fn(models["train step: full fine-tuning"]),
             "inference: ours LoRA merged": infer_fn(merged),
             "inference: ours LoRA merged and unloaded": infer_fn(unloaded),
             "inference: ours LoRA unmerged": infer_fn(models["train step: ours LoRA (dropout 0.0)"]),
             "inference: peft LoRA unmerged": infer_fn(models["train step: peft LoRA (dropout 0.0)"])}
    # the mode is set outside the timed calls: train()/eval() walk every submodule, and the LoRA-wrapped
    # models have several times more of them, which would be charged to LoRA in a host-bound run
    for m in models.values():
        m.train()
    step = time_interleaved(train, device, args.warmup, args.repeat)
    for m in (*models.values(), merged, unloaded):
        m.eval()
    rows = [(name, ms, peaks[name]) for name, ms in step.items()]
    inf = time_interleaved(infer, device, args.warmup, args.repeat)

    print(f"# {describe(args)}, vocab {args.vocab}, batch {args.batch}x{args.seq}, "
          f"LoRA r={args.r} on {targets}, device {device}{', bf16' if args.bf16 else ''}")
    print(f"{'what':45s} {'ms':>9s} {'peak GiB':>9s}")
    for name, ms, gib in rows:
        print(f"{name:45s} {ms:9.1f} {gib:9.2f}")
    for d in dropouts:
        ours = step[f"train step: ours LoRA (dropout {d})"]
        theirs = step[f"train step: peft LoRA (dropout {d})"]
        vs_full = ours / step["train step: full fine-tuning"]
        floor = step["train step: backward floor (frozen)"]
        print(f"ratio ours/peft train step (dropout {d}): {ours / theirs:.2f}   ours/full: {vs_full:.2f}   "
              f"LoRA time above the floor, ours/peft: {(ours - floor) / (theirs - floor):.2f}")
        if args.unfused:
            unfused = step[f"train step: ours LoRA unfused (dropout {d})"]
            print(f"ratio ours fused/unfused train step (dropout {d}): {ours / unfused:.2f}   "
                  f"unfused/peft: {unfused / theirs:.2f}")
    base = inf["inference: base"]
    for name, ms in inf.items():
        overhead = f"  ({100 * (ms / base - 1):+.1f}%)" if name != "inference: base" else ""
        print(f"{name:45s} {ms:9.1f}{overhead}")
    if args.profile:  # where a LoRA step's time goes beyond the floor's: which kernels, and how many launches
        for m in models.values():
            m.train()
        for name in ("train step: full fine-tuning", "train step: backward floor (frozen)",
                     "train step: ours LoRA (dropout 0.0)", "train step: peft LoRA (dropout 0.0)"):
            print_kernel_profile(name, train[name], device, step[name], calls=3, top=8)
        for m in models.values():
            m.eval()
        for name in ("inference: base", "inference: ours LoRA unmerged"):
            print_kernel_profile(name, infer[name], device, inf[name], calls=3, top=8)


if __name__ == "__main__":
    main()
