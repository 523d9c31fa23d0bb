"""Targets by architecture: our default LoRA targets hold peft's own defaults for the same model types, every
name of a layout exists in a tiny model of its family, and adapters land where the layout says."""

from __future__ import annotations

import pytest
import torch
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

from deepnotes.peft import AdapterConfig, apply
from deepnotes.peft.methods import method_config
from deepnotes.peft.methods.adapter import AdapterLayer
from deepnotes.peft.methods.lora.layer import LoraLayer
from deepnotes.peft.methods.targets import LAYOUTS, default_lora_targets
from tests.peft.conftest import BUILDERS, VOCAB


def _gated_t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                               num_heads=4, feed_forward_proj="gated-gelu", pad_token_id=0,
                                               eos_token_id=2, decoder_start_token_id=0))


def _leaf_names(model: torch.nn.Module) -> set[str]:
    return {path.rsplit(".", 1)[-1] for path, _ in model.named_modules() if path}


def test_every_layout_is_tested_and_holds_peft_defaults():
    assert set(LAYOUTS) == set(BUILDERS)
    for model_type, layout in LAYOUTS.items():
        assert model_type in PEFT_TARGETS, model_type  # peft knows every family we lay out
        peft_default = PEFT_TARGETS[model_type]
        assert set(peft_default) <= set(layout.lora), (model_type, peft_default, layout.lora)


@pytest.mark.parametrize("model_type", list(LAYOUTS))
def test_every_default_target_is_a_module_of_the_family(model_type):
    model = BUILDERS[model_type]()
    assert model.config.model_type == model_type
    missing = set(LAYOUTS[model_type].lora) - _leaf_names(model)
    if model_type == "t5":  # T5 1.0 has wi, T5 1.1 (gated) wi_0 and wi_1: each has what the other lacks
        assert missing == {"wi_0", "wi_1"}
        assert set(LAYOUTS["t5"].lora) - _leaf_names(_gated_t5()) == {"wi"}
    else:
        assert not missing
    apply(model, method_config("lora", model))
    wrapped = {p.rsplit(".", 1)[-1] for p, m in model.named_modules() if isinstance(m, LoraLayer)}
    assert wrapped == set(LAYOUTS[model_type].lora) - missing


@pytest.mark.parametrize(("model_type", "houlsby", "pfeiffer"), [
    ("gpt2", 4, 2), ("bart", 10, 4), ("t5", 10, 4), ("llama", 4, 2), ("qwen2", 4, 2), ("mistral", 4, 2)])
def test_adapter_placement_per_family(model_type, houlsby, pfeiffer, ids):
    for kind, count in (("houlsby", houlsby), ("pfeiffer", pfeiffer), ("parallel", pfeiffer)):
        model = apply(BUILDERS[model_type](), AdapterConfig(kind=kind, bottleneck=3))
        sites = [m for m in model.modules() if isinstance(m, AdapterLayer)]
        assert len(sites) == count, (model_type, kind)
        assert all(m.adapters["default"].down.out_features == 3 for m in sites)
        model(input_ids=ids, labels=ids).loss.backward()  # the parallel taps were recorded


def test_gated_t5_parallel_adapters_read_the_feed_forward_input(ids):
    model = apply(_gated_t5(), AdapterConfig(kind="parallel"))
    model(input_ids=ids, labels=ids).loss.backward()


def test_unknown_family_needs_explicit_lora_targets():
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=4, vocab_size=VOCAB))
    model.config.model_type = "my_gpt"
    with pytest.raises(ValueError, match="no default LoRA targets for model type 'my_gpt'.*--target-modules"):
        default_lora_targets(model)
    assert method_config("lora", model, target_modules=["c_attn"]).target_modules == ["c_attn"]
