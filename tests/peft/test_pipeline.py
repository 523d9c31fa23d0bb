"""Tasks, tokenizer/pretraining, train (incl. resume), generate and the CLI's bad-input errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.peft.cli import app
from deepnotes.peft.data.tasks import make_task, read_jsonl
from deepnotes.peft.memory import training_step_bytes
from deepnotes.peft.train import score

runner = CliRunner()


def test_tasks_are_deterministic_and_state_every_slot():
    a, b = make_task("table2text", "train", 50), make_task("table2text", "train", 50)
    assert a == b and make_task("table2text", "test", 50) != a
    for ex in a:
        slots = dict(part.split(" : ") for part in ex.source.split(" | "))
        assert slots["name"] in ex.target
        if "food" in slots:
            assert slots["food"] in ex.target
    for ex in make_task("summarize", "train", 20):
        key = next(s for s in ex.source.split(". ") if s.startswith("On "))
        assert key.split(", ", 1)[1].split(" of ")[1].split(" ")[0] in ex.target  # the city


def test_unknown_task_lists_valid():
    with pytest.raises(ValueError, match="table2text, summarize"):
        make_task("translate", "train", 3)


def test_read_jsonl_skips_and_reports_bad_lines(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"source": "a", "target": "b"}\nnot json\n{"source": "c"}\n')
    ex, problems = read_jsonl(p)
    assert len(ex) == 1 and len(problems) == 2 and "d.jsonl:2" in problems[0]


def test_read_jsonl_refuses_non_text_fields_and_bad_bytes_per_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"source": null, "target": "x"}\n{"source": "ok\xff", "target": "y"}\n'
                  b'{"source": 5, "target": ["a"]}\n{"source": "good", "target": "fine"}\n')
    ex, problems = read_jsonl(p)
    assert ex == [type(ex[0])("good", "fine")]  # null / numbers / lists were read as 'None', '5', "['a']"
    assert [q.split(": ", 1)[0] for q in problems] == [f"{p}:1", f"{p}:2", f"{p}:3"]
    assert "field 'source' is NoneType" in problems[0] and "not UTF-8" in problems[1]


def test_splits_never_share_a_source():
    # independent draws put 58 of 500 test sources into a 20000-example training set
    train = {e.source for e in make_task("table2text", "train", 4000)}
    test = [e.source for e in make_task("table2text", "test", 400)]
    assert not train & set(test) and len(set(test)) > 300


def test_encode_fits_the_context_and_marks_what_it_cut(pretrained):
    from transformers import AutoTokenizer

    from deepnotes.peft.data.tasks import Example
    from deepnotes.peft.train import encode

    tok = AutoTokenizer.from_pretrained(pretrained)
    long = Example(" ".join(["word"] * 400), " ".join(["reply"] * 400))
    short = Example("name : Aromi", "Aromi is a pub.")
    rows = encode(tok, [long, short], encdec=False, context=256)
    assert len(rows[0]["input_ids"]) <= 256 and rows[0]["truncated"] and not rows[1]["truncated"]
    assert len(rows[0]["labels"]) == len(rows[0]["input_ids"]) and rows[0]["labels"][-1] == tok.eos_token_id


def test_score_uses_sacrebleu_and_rouge():
    s = score(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert s["bleu"] == pytest.approx(100.0) and s["rougeL"] == pytest.approx(100.0)
    assert score(["dog"], ["the cat sat on the mat"])["bleu"] < 5


def test_memory_accounting_full_exceeds_lora(ids):
    from deepnotes.peft import LoraConfig, apply
    from tests.peft.conftest import tiny_gpt2

    def measure(model):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
        return training_step_bytes(model, {"input_ids": ids, "labels": ids}, opt)

    full = measure(tiny_gpt2())
    lora = measure(apply(tiny_gpt2(), LoraConfig(r=2, target_modules=["c_attn"])))
    # full: + gradients and 2 Adam moments of every weight
    n = sum(p.numel() for p in tiny_gpt2().parameters()) * 4
    assert full - lora > 2.5 * n


def test_pretrain_writes_from_pretrained_folder(pretrained):
    from deepnotes.peft.models import load_base

    model, tok = load_base(pretrained)
    assert len(tok) == model.config.vocab_size
    assert tok.decode(tok("hello world")["input_ids"]) == "hello world"
    assert json.loads((pretrained / "pretrain.json").read_text())["steps"] == 3


def test_bart_pretrain_infill_runs(tmp_path):
    from deepnotes.peft.pretrain import pretrain

    s = pretrain("bart", "tiny", tmp_path / "bart", steps=2, batch_size=2, device="cpu", max_chars=20000)
    assert s["steps"] == 2 and (tmp_path / "bart" / "tokenizer.json").is_file()


def test_train_resume_generate(pretrained, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--method", "prefix", "--model", str(pretrained), "--task", "table2text",
            "--out", str(run), "--batch-size", "2", "--n-train", "20", "--n-test", "2", "--device", "cpu"]
    res = runner.invoke(app, [*args, "--steps", "2"])
    assert res.exit_code == 0, res.output
    from deepnotes.core.checkpoint import load_checkpoint

    state, meta = load_checkpoint(run / "checkpoint.safetensors")
    # only the trained parameters: the prefix (embedding + MLP while training), nothing of the base model
    assert state["model"] and all(k.startswith("prefix_tuning.") for k in state["model"])
    assert any(".mlp." in k for k in state["model"]) and meta["step"] == 2
    res = runner.invoke(app, [*args, "--steps", "3", "--resume"])
    assert res.exit_code == 0, res.output
    records = json.loads((run / "metrics.json").read_text())
    # step: global steps; epoch: 1-based passes over the 20 examples (10 steps of 2 each)
    assert [m["step"] for m in records] == [2, 3] and [m["epoch"] for m in records] == [1, 1]
    results = json.loads((run / "results.json").read_text())
    assert {"bleu", "rouge1", "rouge2", "rougeL", "trainable", "test_loss"} <= set(results)
    assert 0 < results["test_loss"] < 20
    res = runner.invoke(app, ["generate", str(run), "name : Aromi | eatType : pub", "--max-new-tokens", "4",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output


def test_cli_bad_method_and_task(pretrained, tmp_path):
    # refused at parse time, naming the valid choices (typer quotes them)
    res = runner.invoke(app, ["train", "--method", "ia3", "--model", str(pretrained), "--task", "table2text",
                              "--out", str(tmp_path)])
    methods = ("lora", "adapter", "prefix", "prompt", "full")
    assert res.exit_code == 2 and all(f"'{m}'" in res.output for m in methods)
    res = runner.invoke(app, ["train", "--method", "lora", "--model", str(pretrained), "--task", "qa",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2 and "'table2text'" in res.output and "'summarize'" in res.output
    res = runner.invoke(app, ["train", "--method", "lora", "--model", str(tmp_path / "nope"), "--task", "qa",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2


def test_train_on_user_jsonl_skips_and_reports_bad_lines(pretrained, tmp_path):
    data = tmp_path / "mine.jsonl"
    rows = [json.dumps({"source": f"name : Cafe{i} | food : Thai", "target": f"Cafe{i} serves Thai food."})
            for i in range(6)]
    data.write_text("\n".join([*rows[:3], "{not json", json.dumps({"source": "x"}), *rows[3:]]) + "\n")
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--method", "lora", "--model", str(pretrained), "--task", "table2text",
                              "--out", str(run), "--steps", "1", "--batch-size", "2", "--device", "cpu",
                              "--train-file", str(data), "--test-file", str(data)])
    assert res.exit_code == 0, res.output
    results = json.loads((run / "results.json").read_text())
    # 2 bad lines, read once for train and once for test
    assert results["skipped_lines"] == 4 and "mine.jsonl:4" in results["skipped"][0]
    assert results["examples"][0]["reference"] == "Cafe0 serves Thai food."
    assert results["max_new_tokens"] >= 16 and results["truncated_train_examples"] == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{bad\n")
    res = runner.invoke(app, ["train", "--method", "lora", "--model", str(pretrained), "--task", "table2text",
                              "--out", str(tmp_path / "r2"), "--steps", "1", "--device", "cpu",
                              "--train-file", str(empty)])
    assert res.exit_code == 2 and "no usable train example" in res.output
