"""`deepnotes peft ...`: pretrain, train, generate (thin: parse, resolve the config, call the library).

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
from deepnotes.peft.config import PretrainConfig, TrainConfig
from deepnotes.peft.data.tasks import TASKS
from deepnotes.peft.methods import METHODS
from deepnotes.peft.models import ARCHS, SIZES

app = typer.Typer(no_args_is_help=True,
                  help="LoRA, adapters, prefix and prompt tuning: pretrain, train, generate.")

_ARCH = str_enum("Arch", ARCHS)
_SIZE = str_enum("Size", tuple(SIZES))
_METHOD = METHODS.choices()
_TASK = str_enum("Task", TASKS)


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
                               help="base model folder (from `deepnotes peft pretrain`; required)"),
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
) -> None:
    """Fine-tune with one method; writes the adapter (peft layout), metrics and test scores.
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
