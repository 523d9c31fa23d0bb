"""`deepnotes peft ...`: pretrain, train, generate, memory (thin: parse, resolve the config, call the
library).

``train`` and ``pretrain`` take ``--config FILE.yaml`` (keys: the fields of :class:`TrainConfig` /
:class:`PretrainConfig`); flags typed on the command line override it, and with ``--resume`` the run's
stored config is the base both change.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from deepnotes.core.cli import (
    CONFIG_OPTION_HELP,
    deprecated,
    positive,
    resolve_config,
    resume_folder,
    user_errors,
)
from deepnotes.core.registry import str_enum
from deepnotes.peft.config import PretrainConfig, TrainConfig, knob_options
from deepnotes.peft.data.tasks import TASKS
from deepnotes.peft.memory.estimate import ATTENTION, DEVICES, DTYPES, OPTIMIZERS, estimate, format_table
from deepnotes.peft.methods import METHODS
from deepnotes.peft.models import ARCHS, SIZES

app = typer.Typer(no_args_is_help=True,
                  help="LoRA, adapters, prefix and prompt tuning: pretrain, train, generate, memory.")

_ARCH = str_enum("Arch", ARCHS)
_SIZE = str_enum("Size", tuple(SIZES))
_METHOD = METHODS.choices()
_TASK = str_enum("Task", TASKS)
_DTYPE = str_enum("Dtype", tuple(DTYPES))
_OPTIMIZER = str_enum("Optimizer", tuple(OPTIMIZERS))
_ATTENTION = str_enum("Attention", ATTENTION)
_DEVICE = str_enum("MemoryDevice", DEVICES)
TARGETS_HELP = ("lora: module names, comma-separated (default per architecture: every attention and MLP "
                "projection, e.g. q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj for LLaMA / "
                "Qwen2 / Mistral, c_attn,c_proj,c_fc for GPT-2; peft's default is q_proj,v_proj)")


@app.command("pretrain")
def pretrain_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", help=CONFIG_OPTION_HELP),
    arch: _ARCH = typer.Option(None, "--arch", help="model architecture (required)"),
    size: _SIZE = typer.Option("tiny", "--size",
                               help="tiny (2 layers, 64 wide) or small (6 layers, 384 wide)"),
    out: Path = typer.Option(None, "--out",
                             help="folder for the model and tokenizer (save_pretrained layout; required)"),
    steps: int = typer.Option(None, "--steps", min=1,
                              help="optimizer steps (default: 800 tiny, 20000 small)"),
    minutes: float = typer.Option(None, "--minutes", min=0.0, help="stop after this much training time "
                                  "(this invocation; a --resume carries on)"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="blocks per process and step"),
    lr: float = typer.Option(1e-3, "--lr", callback=positive),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    max_chars: int = typer.Option(None, "--max-chars", min=1,
                                  help="use only the first N characters of the corpus"),
    save_every: int = typer.Option(500, "--save-every", min=1,
                                   help="write OUT/checkpoint.safetensors every N steps"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT's checkpoint (its stored settings "
                                "are the base the other flags change)"),
) -> None:
    """Pre-train a tokenizer and a GPT-2 / BART model on the Python standard library's docstrings.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.peft.pretrain import run_pretraining, stored_pretrain_config

    flags = {k: v for k, v in locals().items() if k in PretrainConfig.__dataclass_fields__}
    base = resume_folder(config, out, resume)
    # the stored settings sit below --config and the flags (the folder's config.json is the model's)
    stored = stored_pretrain_config(base) if base else None
    cfg = resolve_config(PretrainConfig, ctx, config, flags, defaults=stored)
    with user_errors():
        s = run_pretraining(cfg, resume, log_fn=typer.echo)
    if s:  # a torchrun process other than rank 0 returns {}: rank 0 reports
        typer.echo(f"wrote {cfg.out}: {s['steps']} of {s['target_steps']} steps, "
                   f"final loss {s['final_loss']:.3f} (ppl {s['final_ppl']:.1f})")


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", help=CONFIG_OPTION_HELP),
    method: _METHOD = typer.Option(None, "--method", help="the PEFT method (required)"),
    model: Path = typer.Option(None, "--model",
                               help="base model: a save_pretrained folder with its tokenizer (e.g. from "
                             "`deepnotes peft pretrain`; required)"),
    task: _TASK = typer.Option(None, "--task", help="the synthetic task (required)"),
    out: Path = typer.Option(None, "--out", help="run folder (required)"),
    steps: int = typer.Option(300, "--steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="examples per process and step"),
    lr: float = typer.Option(None, "--lr", callback=positive, help="default per method: "
                             + ", ".join(f"{n} {m.lr:g}" for n, m in METHODS.items())),
    n_train: int = typer.Option(2000, "--n-train", min=1, help="synthetic training examples"),
    n_test: int = typer.Option(100, "--n-test", min=1,
                               help="synthetic test examples scored with sacreBLEU / ROUGE"),
    save_every: int = typer.Option(None, "--save-every", min=1,
                                   help="checkpoint and log record every N steps (default 500, and at the "
                                   "end)"),
    eval_every: int = typer.Option(None, "--eval-every", min=1, hidden=True,
                                   help="deprecated: use --save-every"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's checkpoint (its "
                                "stored config is the base the other flags change)"),
    train_file: Path = typer.Option(None, "--train-file", help="your data: JSON lines {source, target}"),
    test_file: Path = typer.Option(None, "--test-file", help="your test data: JSON lines {source, target}"),
    r: int = typer.Option(None, "--r", min=1, help="lora: rank of the update (default 8)"),
    alpha: float = typer.Option(None, "--alpha", callback=positive,
                                help="lora: the update is scaled by alpha / r (default 16)"),
    dropout: float = typer.Option(None, "--dropout", min=0.0, max=0.999,
                                  help="lora: dropout on the adapted layers' input (default 0)"),
    target_modules: str = typer.Option(None, "--target-modules", help=TARGETS_HELP),
    bottleneck: int = typer.Option(None, "--bottleneck", min=1,
                                   help="adapter: hidden width of each adapter (default: model width / 16)"),
    prefix_length: int = typer.Option(None, "--prefix-length", min=1,
                                      help="prefix, prompt: virtual tokens (default 10)"),
) -> None:
    """Fine-tune with one method; writes the adapter (peft layout, with the tokenizer), metrics and test
    scores. --model takes any local save_pretrained folder of a causal LM (GPT-2, LLaMA, Qwen2, Mistral) or
    an encoder-decoder (BART, T5) with its tokenizer. A method option the chosen method lacks is an error.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.peft.train import fine_tune

    flags = {k: v for k, v in locals().items() if k in TrainConfig.__dataclass_fields__}
    cfg = resolve_config(TrainConfig, ctx, config, flags, resume_from=resume_folder(config, out, resume))
    if eval_every is not None:  # the old name of --save-every (it counted steps; --eval-every counts epochs)
        deprecated("--eval-every", "--save-every")
        if save_every is not None and save_every != eval_every:
            raise typer.BadParameter("give --save-every only", param_hint="--eval-every")
        cfg = replace(cfg, save_every=eval_every)
    with user_errors():
        r = fine_tune(cfg, resume, log_fn=typer.echo)
    if not r:  # a torchrun process other than rank 0: rank 0 reports
        return
    typer.echo(f"{cfg.method} on {cfg.task}: BLEU {r['bleu']:.1f}  ROUGE-L {r['rougeL']:.1f}  "
               f"trainable {r['trainable']:,} ({r['trainable_percent']:.2f}%)  -> {cfg.out}/results.json")


@app.command("generate")
def generate_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes peft train`"),
    text: str = typer.Argument(..., help="the input (a table record or an article)"),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
) -> None:
    """Greedy output of a trained run for one input."""
    from deepnotes.peft.train import generate_texts, load_run

    with user_errors():
        model, tok, _ = load_run(run, device)
    typer.echo(generate_texts(model, tok, [text], max_new_tokens)[0])


@app.command("memory")
def memory_cmd(
    config: Path = typer.Option(..., "--config", help="the model's config: a config.json-style JSON file or "
                                "a folder holding config.json (nothing is downloaded)"),
    method: _METHOD = typer.Option("lora", "--method", help="the PEFT method, or full fine-tuning"),
    batch: int = typer.Option(1, "--batch", min=1, help="sequences per step"),
    seq: int = typer.Option(2048, "--seq", min=1, help="tokens per sequence"),
    dtype: _DTYPE = typer.Option("bf16", "--dtype", help="fp32; bf16 / fp16: mixed precision with fp32 "
                                 "master weights and optimizer states; bf16-pure: everything in bf16"),
    optimizer: _OPTIMIZER = typer.Option("adamw", "--optimizer",
                                         help="adamw (two moments) or sgd (momentum)"),
    attention: _ATTENTION = typer.Option("sdpa", "--attention",
                                         help="sdpa (fused kernels) or eager (keeps the S x S "
                                         "probabilities)"),
    device: _DEVICE = typer.Option("cuda", "--device", help="whose sdpa kernels: cuda, or cpu (no fused "
                                   "kernel with attention dropout)"),
    r: int = typer.Option(None, "--r", min=1, help="lora: rank (default 8)"),
    alpha: float = typer.Option(None, "--alpha", callback=positive, help="lora: scale (no memory effect)"),
    dropout: float = typer.Option(None, "--dropout", min=0.0, max=0.999,
                                  help="lora: input dropout (default 0; keeps a copy and a mask per layer)"),
    target_modules: str = typer.Option(None, "--target-modules", help=TARGETS_HELP),
    bottleneck: int = typer.Option(None, "--bottleneck", min=1, help="adapter: hidden width"),
    prefix_length: int = typer.Option(None, "--prefix-length", min=1,
                                      help="prefix, prompt: virtual tokens (default 10)"),
) -> None:
    """Training memory of one step from a model's config: weights, gradients, optimizer states, activations
    and the peak, with the assumptions (a dry run of the transformers code on PyTorch's meta device)."""
    targets = None if target_modules is None else [t.strip() for t in target_modules.split(",") if t.strip()]
    knobs = {"r": r, "alpha": alpha, "dropout": dropout, "target_modules": targets, "bottleneck": bottleneck,
             "prefix_length": prefix_length}
    with user_errors():
        options = knob_options(method.value, knobs)
        est = estimate(config, method.value, batch, seq, dtype.value, optimizer.value,
                       attention=attention.value, device=device.value, options=options)
    typer.echo(format_table(est))
