"""`deepnotes.peft.memory.estimate` (a dry run on the meta device) against the measured peak of the same
training step on the CPU (the CPU allocator's events, recorded by torch.profiler), within 10%; the accounting
of a Qwen1.5-7B-shaped config; `deepnotes peft memory`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.peft import apply
from deepnotes.peft.cli import app
from deepnotes.peft.memory import estimate, measure_peak
from deepnotes.peft.methods import method_config
from tests.peft.conftest import BUILDERS, VOCAB

TOLERANCE = 0.10  # the goal: the estimate within 10% of the measured peak
DOCS = Path(__file__).resolve().parents[2] / "docs" / "peft_memory"
CASES = ([(arch, method, "fp32") for arch in BUILDERS for method in ("full", "lora")]
         + [(arch, method, "fp32") for arch in ("gpt2", "qwen2", "t5") for method in ("adapter", "prefix",
                                                                                        "prompt")]
         + [("qwen2", "full", "bf16-pure"), ("gpt2", "lora", "bf16-pure")])


@pytest.mark.parametrize(("arch", "method", "dtype"), CASES)
def test_estimate_within_ten_percent_of_the_measured_peak(arch, method, dtype):
    batch, seq = 4, 32
    model = BUILDERS[arch]()
    if dtype == "bf16-pure":
        model = model.to(torch.bfloat16)
    cfg = method_config(method, model)
    if cfg is not None:
        apply(model, cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, foreach=False)
    ids = torch.randint(3, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(0))
    measured = measure_peak(model, {"input_ids": ids, "labels": ids}, opt)
    est = estimate(BUILDERS[arch]().config.to_dict(), method, batch, seq, dtype, "adamw", device="cpu")
    assert abs(est.total - measured) <= TOLERANCE * measured, (est.as_dict(), measured)
    state = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if v.dim() > 0)
    assert est.optimizer_states == state
    assert est.gradients == sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def test_seven_b_accounting_and_lora_against_full():
    """Qwen1.5-7B-Chat's shape: 7.72 B parameters; mixed-precision AdamW holds 2 + 2 + 12 bytes per trained
    parameter (bf16 weights and gradients, fp32 master weights and moments)."""
    config = json.loads((DOCS / "qwen1.5-7b-chat.json").read_text())
    full = estimate(config, "full", 1, 256, "bf16", "adamw")
    assert 7.7e9 < full.params < 7.75e9 and full.trainable == full.params
    assert 0 <= full.weights - 2 * full.params < 2**20  # and the rotary tables, a few buffers
    assert full.gradients == 2 * full.params
    assert full.optimizer_states == 12 * full.params
    assert full.weights + full.optimizer_states < full.total <= full.sum_of_parts
    lora = estimate(config, "lora", 1, 256, "bf16", "adamw", options={"r": 8})
    assert lora.trainable < 0.01 * lora.params and lora.total < 0.2 * full.total
    eager = estimate(config, "lora", 1, 256, "bf16", "adamw", attention="eager", options={"r": 8})
    assert eager.activations > lora.activations  # the S x S probabilities of 32 heads, per layer


def test_memory_cli_prints_the_table_with_its_assumptions(tmp_path):
    folder = tmp_path / "qwen2"
    folder.mkdir()
    BUILDERS["qwen2"]().config.to_json_file(folder / "config.json")
    res = CliRunner().invoke(app, ["memory", "--config", str(folder), "--method", "lora", "--batch", "2",
                                   "--seq", "16", "--dtype", "fp32", "--device", "cpu", "--r", "4"])
    assert res.exit_code == 0, res.output
    for row in ("weights", "gradients", "optimizer states (adamw)", "activations (peak)",
                "total (peak of the step)", "assumptions:", "no activation checkpointing"):
        assert row in res.output, row
    res = CliRunner().invoke(app, ["memory", "--config", str(folder / "config.json"), "--method", "prompt",
                                   "--r", "4"])
    assert res.exit_code == 2 and "--r does not apply to --method prompt" in res.output
    (tmp_path / "bad.json").write_text('{"hidden_size": 8}')
    res = CliRunner().invoke(app, ["memory", "--config", str(tmp_path / "bad.json")])
    assert res.exit_code == 2 and "needs a model_type" in res.output
