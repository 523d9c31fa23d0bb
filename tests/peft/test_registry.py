"""The PEFT method registry: what it holds, every registered method end to end, unknown configs refused."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from deepnotes.peft import METHODS, apply, load_adapter, save_adapter, set_adapter
from deepnotes.peft.methods import config_from_peft, method_config, method_of
from tests.peft.conftest import tiny_bart, tiny_gpt2

ADAPTER_METHODS = [name for name, m in METHODS.items() if m.config is not None]


def test_registry_holds_every_method_and_its_learning_rate():
    # the table `peft train` used inline before the registry
    assert {name: m.lr for name, m in METHODS.items()} == {
        "lora": 5e-3, "adapter": 5e-3, "prefix": 1e-2, "prompt": 2e-2, "full": 5e-4}
    assert ADAPTER_METHODS == ["lora", "adapter", "prefix", "prompt"]
    assert METHODS["full"].config is None and method_config("full", tiny_gpt2()) is None
    valid = "lora, adapter, prefix, prompt, full"
    with pytest.raises(ValueError, match=f"unknown PEFT method 'ia3'; valid: {valid}"):
        METHODS["ia3"]


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_bart], ids=["gpt2", "bart"])
@pytest.mark.parametrize("name", ADAPTER_METHODS)
def test_every_method_trains_only_itself_and_round_trips(tmp_path, ids, name, build):
    model = build()
    cfg = method_config(name, model)
    assert method_of(cfg) == (name, METHODS[name])
    apply(model, cfg)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and len(trained) < len(list(model.parameters()))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # move every trained tensor off its initial value (LoRA's B and adapters' up are 0)
        for _name, p in sorted(model.named_parameters()):
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    want = model(input_ids=ids, labels=ids).logits
    save_adapter(model, tmp_path / name)
    loaded = load_adapter(build(), tmp_path / name)
    assert torch.allclose(loaded(input_ids=ids, labels=ids).logits, want, atol=1e-5)
    stored = json.loads((tmp_path / name / "adapter_config.json").read_text())
    assert type(config_from_peft(stored)) is METHODS[name].config
    set_adapter(loaded, "default")  # the registry's trainable set again
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == trained


@dataclass
class IA3Config:
    """A config of a method no one registered."""

    target_modules: tuple[str, ...] = ("c_attn",)


def test_a_config_of_no_registered_method_is_refused_not_taken_for_a_prompt():
    with pytest.raises(TypeError,
                       match="IA3Config is the config of no registered PEFT method; valid: LoraConfig"):
        apply(tiny_gpt2(), IA3Config())
    with pytest.raises(ValueError, match="peft_type='IA3' is not one of LORA, BOTTLENECK, PREFIX_TUNING"):
        config_from_peft({"peft_type": "IA3"})


def test_method_options_are_checked_against_the_method():
    assert method_config("lora", tiny_gpt2(), r=4).r == 4
    with pytest.raises(ValueError, match="prefix has no option 'r'; valid: num_virtual_tokens"):
        method_config("prefix", tiny_gpt2(), r=4)
    with pytest.raises(ValueError, match="full fine-tuning has no options"):
        method_config("full", tiny_gpt2(), r=4)
