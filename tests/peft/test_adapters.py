"""Bottleneck adapters: placement, identity at init, the parallel formula, save/load."""

from __future__ import annotations

import pytest
import torch

from deepnotes.peft import (
    AdapterConfig,
    apply,
    load_adapter,
    merge,
    save_adapter,
    set_adapter,
    trainable_parameters,
)
from deepnotes.peft.methods.adapter import AdapterLayer
from tests.peft.conftest import tiny_bart, tiny_gpt2


def _sites(model):
    return sorted(n for n, m in model.named_modules() if isinstance(m, AdapterLayer))


def _perturb(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".adapters." in n:
                p.normal_(0, 0.2)


def test_placement_per_kind():
    assert _sites(apply(tiny_gpt2(), AdapterConfig(kind="houlsby"))) == [
        "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
        "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"]
    assert _sites(apply(tiny_gpt2(), AdapterConfig(kind="pfeiffer"))) == [
        "transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"]
    bart = _sites(apply(tiny_bart(), AdapterConfig(kind="houlsby")))
    # encoder: self-attn + FFN; decoder: self-attn + cross-attn + FFN, two layers each
    assert len(bart) == 2 * 2 + 2 * 3 and "model.decoder.layers.0.encoder_attn.out_proj" in bart


@pytest.mark.parametrize("kind", ["houlsby", "pfeiffer", "parallel"])
def test_identity_at_init_and_only_adapters_train(kind, ids):
    base = tiny_gpt2()
    ref = base(input_ids=ids).logits
    model = apply(base, AdapterConfig(kind=kind, reduction_factor=4))
    torch.testing.assert_close(model(input_ids=ids).logits, ref)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".adapters.default." in n for n in trainable)
    per = 32 * 8 + 8 + 8 * 32 + 32  # down + up with biases, width 32 -> 8
    sites = 4 if kind == "houlsby" else 2
    assert trainable_parameters(model).trainable == sites * per


def test_serial_formula(ids):
    model = apply(tiny_gpt2(), AdapterConfig(kind="pfeiffer", reduction_factor=4, activation="gelu"))
    _perturb(model)
    layer = model.transformer.h[0].mlp.c_proj
    x = torch.randn(2, 3, 128)
    y = layer.base_layer(x)
    a = layer.adapters["default"]
    want = y + a.up(torch.nn.functional.gelu(a.down(y)))
    torch.testing.assert_close(layer(x), want)


def test_parallel_formula(ids):
    model = apply(tiny_gpt2(), AdapterConfig(kind="parallel", reduction_factor=4, scale=0.5))
    _perturb(model)
    mlp = model.transformer.h[0].mlp
    x = torch.randn(2, 3, 32)
    a = mlp.c_proj.adapters["default"]
    want = mlp.dropout(mlp.c_proj.base_layer(mlp.act(mlp.c_fc(x)))) + 0.5 * a(x)
    torch.testing.assert_close(mlp(x), want)


def test_bart_parallel_trains_and_round_trips(ids, tmp_path):
    model = apply(tiny_bart(), AdapterConfig(kind="parallel", reduction_factor=4))
    _perturb(model)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    save_adapter(model, tmp_path)
    back = load_adapter(tiny_bart(), tmp_path)
    torch.testing.assert_close(back(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6, rtol=0)


def test_two_adapters_switch_and_merge_refused(ids):
    model = apply(tiny_gpt2(), AdapterConfig(kind="houlsby"), name="a")
    apply(model, AdapterConfig(kind="pfeiffer"), name="b")
    _perturb(model)
    set_adapter(model, "a")
    out_a = model(input_ids=ids).logits
    set_adapter(model, "b")
    assert not torch.allclose(out_a, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="LoRA only"):
        merge(model)


def test_bad_adapter_config():
    with pytest.raises(ValueError, match="kind"):
        AdapterConfig(kind="serial")
