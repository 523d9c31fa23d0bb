"""`deepnotes peft ...`: pretrain, train, generate (thin: parse, then call the library)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="LoRA, adapters, prefix and prompt tuning: pretrain, train, generate.")

_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from exc


@app.command("pretrain")
def pretrain_cmd(
    arch: str = typer.Option(..., "--arch", help="gpt2 or bart"),
    size: str = typer.Option("tiny", "--size", help="tiny (2 layers, 64 wide) or small (6 layers, 384 wide)"),
    out: Path = typer.Option(..., "--out", help="folder for the model and tokenizer (save_pretrained layout)"),
    steps: int = typer.Option(None, "--steps", help="optimizer steps (default: 800 tiny, 20000 small)"),
    minutes: float = typer.Option(None, "--minutes", help="stop after this much training time"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    max_chars: int = typer.Option(None, "--max-chars", help="use only the first N characters of the corpus"),
    save_every: int = typer.Option(500, "--save-every", help="write OUT/checkpoint.safetensors every N steps"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT's checkpoint (same arguments)"),
) -> None:
    """Pre-train a tokenizer and a GPT-2 / BART model on the Python standard library's docstrings."""
    from deepnotes.peft.pretrain import pretrain

    try:
        s = pretrain(arch, size, out, steps, minutes, batch_size, lr, seed, device, max_chars, save_every, resume)
    except _USER_ERRORS as exc:
        _fail(exc)
    typer.echo(f"wrote {out}: {s['steps']} of {s['target_steps']} steps, final loss {s['final_loss']:.3f} (ppl {s['final_ppl']:.1f})")


@app.command("train")
def train_cmd(
    method: str = typer.Option(..., "--method", help="lora, adapter, prefix, prompt or full"),
    model: Path = typer.Option(..., "--model", help="base model folder (from `deepnotes peft pretrain`)"),
    task: str = typer.Option(..., "--task", help="table2text or summarize"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    steps: int = typer.Option(300, "--steps"),
    batch_size: int = typer.Option(8, "--batch-size"),
    lr: float = typer.Option(None, "--lr", help="default per method"),
    n_train: int = typer.Option(2000, "--n-train", help="synthetic training examples"),
    n_test: int = typer.Option(100, "--n-test", help="synthetic test examples scored with sacreBLEU / ROUGE"),
    eval_every: int = typer.Option(None, "--eval-every", help="log + checkpoint every N steps (default 500, and at the end)"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's checkpoint"),
    train_file: Path = typer.Option(None, "--train-file", help="your data: JSON lines {source, target}"),
    test_file: Path = typer.Option(None, "--test-file", help="your test data: JSON lines {source, target}"),
) -> None:
    """Fine-tune with one method; writes the adapter (peft layout), metrics and test scores.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.peft.train import train

    try:
        r = train(method, model, task, out, steps, batch_size, lr, n_train, n_test, eval_every, seed, device, resume,
                  train_file=train_file, test_file=test_file)
    except _USER_ERRORS as exc:
        _fail(exc)
    if not r:  # a torchrun process other than rank 0: rank 0 reports
        return
    typer.echo(f"{method} on {task}: BLEU {r['bleu']:.1f}  ROUGE-L {r['rougeL']:.1f}  "
               f"trainable {r['trainable']:,} ({r['trainable_percent']:.2f}%)  -> {out}/results.json")


@app.command("generate")
def generate_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes peft train`"),
    text: str = typer.Argument(..., help="the input (a table record or an article)"),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Greedy output of a trained run for one input."""
    from deepnotes.peft.train import generate_texts, load_run

    try:
        model, tok, _ = load_run(run, device)
    except _USER_ERRORS as exc:
        _fail(exc)
    typer.echo(generate_texts(model, tok, [text], max_new_tokens)[0])
