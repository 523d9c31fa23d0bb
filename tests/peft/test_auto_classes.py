"""Adapter folders name their base (task_type, base_model_name_or_path, revision), so peft's Auto classes
load them from a local base folder and give our outputs; `peft train --model DIR` takes a Qwen2-shaped
save_pretrained folder whose tokenizer has no start or padding token."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import peft
from deepnotes.peft import apply, save_adapter
from deepnotes.peft.cli import app
from deepnotes.peft.methods import method_config
from deepnotes.peft.models import load_base
from deepnotes.peft.train import load_run
from tests.peft.conftest import tiny_bart, tiny_t5, word_tokenizer

runner = CliRunner()


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_train_on_a_qwen2_folder_and_load_with_auto_peft_model(qwen2_folder, tmp_path, method):
    run = tmp_path / "run"
    knob = ["--r", "4", "--alpha", "8", "--target-modules", "q_proj,v_proj"] if method == "lora" else [
        "--prefix-length", "3"]
    res = runner.invoke(app, ["train", "--method", method, "--model", str(qwen2_folder), "--task",
                              "table2text", "--out", str(run), "--steps", "2", "--batch-size", "2",
                              "--n-train", "8", "--n-test", "2", "--device", "cpu", *knob])
    assert res.exit_code == 0, res.output
    stored = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert stored["task_type"] == "CAUSAL_LM" and stored["revision"] is None
    assert stored["base_model_name_or_path"] == str(qwen2_folder.resolve())
    if method == "lora":
        assert (stored["r"], stored["lora_alpha"]) == (4, 8)
        assert stored["target_modules"] == ["q_proj", "v_proj"]
    else:
        assert stored["num_virtual_tokens"] == 3
    ours, tok, _ = load_run(run, "cpu")
    theirs = peft.AutoPeftModelForCausalLM.from_pretrained(run / "adapter").eval()
    assert isinstance(theirs, peft.PeftModelForCausalLM)
    ids = tok(["name : Aromi | eatType : pub"], return_tensors="pt")["input_ids"]
    torch.testing.assert_close(theirs(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("build", [tiny_bart, tiny_t5], ids=["bart", "t5"])
def test_auto_peft_seq2seq_loads_our_folder_with_a_local_base(build, tmp_path, ids):
    base = tmp_path / "base"
    build().save_pretrained(base)
    word_tokenizer().save_pretrained(base)  # load_base reads the tokenizer beside the model
    model, tok = load_base(base)
    apply(model, method_config("lora", model))
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if "lora_B" in n:
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    save_adapter(model, tmp_path / "adapter")
    tok.save_pretrained(tmp_path / "adapter")
    stored = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert stored["task_type"] == "SEQ_2_SEQ_LM" and stored["base_model_name_or_path"] == str(base.resolve())
    theirs = peft.AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter").eval()
    model.eval()
    torch.testing.assert_close(theirs(input_ids=ids, labels=ids).logits,
                               model(input_ids=ids, labels=ids).logits, atol=1e-5, rtol=0)


def test_base_model_named_by_the_caller_and_none_for_a_model_built_in_memory(tmp_path):
    model = apply(tiny_bart(), method_config("lora", tiny_bart()))
    save_adapter(model, tmp_path / "a")
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["base_model_name_or_path"] is None
    save_adapter(model, tmp_path / "b", base_model="facebook/bart-base", revision="main")
    stored = json.loads((tmp_path / "b" / "adapter_config.json").read_text())
    assert stored["base_model_name_or_path"] == "facebook/bart-base" and stored["revision"] == "main"
