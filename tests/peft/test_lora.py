"""LoRA against HF peft: same weights -> same outputs and gradients; files readable both ways."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import peft
from deepnotes.peft import (
    LoraConfig,
    apply,
    load_adapter,
    merge,
    merge_and_unload,
    save_adapter,
    set_adapter,
    trainable_parameters,
    unmerge,
)
from deepnotes.peft.methods.lora import fused
from deepnotes.peft.methods.lora import layer as lora_layer
from deepnotes.peft.methods.targets import LAYOUTS
from tests.peft.conftest import tiny_bart, tiny_gpt2, tiny_qwen2


def _randomise_b(model: nn.Module, seed: int = 3) -> None:
    """B starts at zero (LoRA is then a no-op); give it values so the comparisons mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if "lora_B" in n or "lora_embedding_A" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _copy_lora_weights(src: nn.Module, dst_peft: nn.Module) -> None:
    ours = {k: v for k, v in src.state_dict().items() if "lora_" in k}
    theirs = dst_peft.base_model.model.state_dict()
    assert set(ours) <= set(theirs), set(ours) - set(theirs)
    dst_peft.base_model.model.load_state_dict(ours, strict=False)


def _peft_config(cfg: LoraConfig, **kw) -> peft.LoraConfig:
    return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                           target_modules=cfg.target_modules, use_rslora=cfg.use_rslora, bias=cfg.bias, **kw)


def _assert_same_logits_and_lora_grads(ours: nn.Module, theirs: nn.Module, ids: torch.Tensor) -> list[str]:
    """One forward and backward of both models on ``ids``: same logits and the same gradient on every
    trainable parameter of ours (peft's parameter of the same name). Returns those names."""
    out_a, out_b = ours(input_ids=ids, labels=ids), theirs(input_ids=ids, labels=ids)
    torch.testing.assert_close(out_a.logits, out_b.logits, atol=1e-5, rtol=0)
    out_a.loss.backward()
    out_b.loss.backward()
    grads_b = dict(theirs.base_model.model.named_parameters())
    names = [n for n, p in ours.named_parameters() if p.requires_grad]
    for n in names:
        torch.testing.assert_close(ours.get_parameter(n).grad, grads_b[n].grad, atol=1e-5, rtol=0)
    return names


@pytest.mark.parametrize("use_rslora", [False, True])
@pytest.mark.parametrize("targets", [["c_attn", "c_fc"], ["c_attn", "wte"], r".*\.mlp\.c_proj"])
def test_gpt2_outputs_and_gradients_match_peft(ids, targets, use_rslora):
    cfg = LoraConfig(r=4, alpha=8, target_modules=targets, use_rslora=use_rslora)
    ours = apply(tiny_gpt2(), cfg)
    _randomise_b(ours)
    theirs = peft.get_peft_model(tiny_gpt2(), _peft_config(cfg, fan_in_fan_out=True))
    _copy_lora_weights(ours, theirs)
    names = _assert_same_logits_and_lora_grads(ours, theirs, ids)
    assert names and all("lora_" in n for n in names)


def test_bart_linear_matches_peft(ids):
    cfg = LoraConfig(r=2, alpha=4, target_modules=["q_proj", "v_proj"])
    ours = apply(tiny_bart(), cfg)
    _randomise_b(ours)
    theirs = peft.get_peft_model(tiny_bart(), _peft_config(cfg))
    _copy_lora_weights(ours, theirs)
    a = ours(input_ids=ids, labels=ids).logits
    b = theirs(input_ids=ids, labels=ids).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_only_lora_trains_and_init_is_identity(ids):
    base = tiny_gpt2()
    ref = base(input_ids=ids).logits
    model = apply(base, LoraConfig(r=4, alpha=8, target_modules=["c_attn"]))
    report = trainable_parameters(model)
    # 2 layers x (A: 4x32 + B: 96x4)
    assert report.trainable == 2 * (4 * 32 + 96 * 4)
    assert 0 < report.percent < 10
    torch.testing.assert_close(model(input_ids=ids).logits, ref)


def test_gaussian_init_std():
    model = apply(tiny_gpt2(), LoraConfig(r=4, target_modules=["c_attn"], init="gaussian"))
    a = model.transformer.h[0].attn.c_attn.lora_A["default"].weight
    assert abs(a.std().item() - 0.25) < 0.05
    assert model.transformer.h[0].attn.c_attn.lora_B["default"].weight.abs().sum() == 0


def test_dropout_is_active_in_training_only(ids):
    model = apply(tiny_gpt2(), LoraConfig(r=4, target_modules=["c_attn"], dropout=0.5))
    _randomise_b(model)
    model.eval()
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.train()
    model.config.attn_pdrop = 0.0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    assert not torch.allclose(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_merge_unmerge_and_unload(ids):
    model = apply(tiny_gpt2(), LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc", "wte"]))
    _randomise_b(model)
    want = model(input_ids=ids).logits
    w0 = model.transformer.h[0].attn.c_attn.base_layer.weight.clone()
    merge(model)
    torch.testing.assert_close(model(input_ids=ids).logits, want, atol=1e-5, rtol=0)
    unmerge(model)
    torch.testing.assert_close(model.transformer.h[0].attn.c_attn.base_layer.weight, w0, atol=1e-6, rtol=0)
    plain = merge_and_unload(model)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    assert type(plain.transformer.h[0].attn.c_attn).__name__ == "Conv1D"
    torch.testing.assert_close(plain(input_ids=ids).logits, want, atol=1e-5, rtol=0)


def test_bias_options_and_modules_to_save():
    m = apply(tiny_gpt2(), LoraConfig(r=2, target_modules=["c_attn"], bias="lora_only",
                                      modules_to_save=["ln_f"]))
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert "transformer.h.0.attn.c_attn.base_layer.bias" in names
    assert "transformer.h.0.mlp.c_fc.bias" not in names
    assert "transformer.ln_f.modules_to_save.default.weight" in names
    m2 = apply(tiny_gpt2(), LoraConfig(r=2, target_modules=["c_attn"], bias="all"))
    names2 = {n for n, p in m2.named_parameters() if p.requires_grad}
    assert "transformer.h.0.mlp.c_fc.bias" in names2 and "transformer.ln_f.bias" in names2
    assert "transformer.ln_f.weight" not in names2


def test_several_named_adapters_switch(ids):
    model = apply(tiny_gpt2(), LoraConfig(r=2, target_modules=["c_attn"]), name="a")
    _randomise_b(model, seed=1)
    out_a = model(input_ids=ids).logits
    apply(model, LoraConfig(r=4, target_modules=["c_attn"]), name="b")
    _randomise_b(model, seed=2)  # changes both adapters' B
    set_adapter(model, "b")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".b." in n for n in trainable)
    out_b = model(input_ids=ids).logits
    set_adapter(model, "a")
    assert not torch.allclose(out_a, out_b)
    with pytest.raises(ValueError, match="no adapter named 'c'"):
        set_adapter(model, "c")


def test_peft_loads_our_files(tmp_path, ids):
    cfg = LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc", "wte"], bias="lora_only",
                     modules_to_save=["ln_f"])
    ours = apply(tiny_gpt2(), cfg)
    _randomise_b(ours)
    with torch.no_grad():
        ours.transformer.ln_f.modules_to_save["default"].weight.mul_(1.5)
        ours.transformer.h[0].attn.c_attn.base_layer.bias.add_(0.1)
    save_adapter(ours, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["fan_in_fan_out"] is True
    theirs = peft.PeftModel.from_pretrained(tiny_gpt2(), tmp_path).eval()
    torch.testing.assert_close(theirs(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_we_load_peft_files(tmp_path, ids):
    pcfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "wte"], fan_in_fan_out=True,
                           modules_to_save=["ln_f"], init_lora_weights="gaussian")
    theirs = peft.get_peft_model(tiny_gpt2(), pcfg)
    _randomise_b(theirs)
    theirs.save_pretrained(tmp_path)
    ours = load_adapter(tiny_gpt2(), tmp_path)
    torch.testing.assert_close(ours(input_ids=ids).logits, theirs.eval()(input_ids=ids).logits,
                               atol=1e-5, rtol=0)
    assert ours.deepnotes_peft.configs["default"].init == "gaussian"


def test_bart_round_trip_through_peft(tmp_path, ids):
    ours = apply(tiny_bart(), LoraConfig(r=2, target_modules=["q_proj", "v_proj", "fc1"]))
    _randomise_b(ours)
    save_adapter(ours, tmp_path / "a")
    theirs = peft.PeftModel.from_pretrained(tiny_bart(), tmp_path / "a").eval()
    torch.testing.assert_close(theirs(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5, rtol=0)
    theirs.save_pretrained(tmp_path / "b")
    back = load_adapter(tiny_bart(), tmp_path / "b")
    torch.testing.assert_close(back(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_bad_target_lists_module_names():
    with pytest.raises(ValueError, match=r"matches no .*transformer\.h\.0\.attn\.c_attn"):
        apply(tiny_gpt2(), LoraConfig(target_modules=["q_proj"]))


def test_shape_mismatch_names_the_tensor(tmp_path):
    save_adapter(apply(tiny_gpt2(), LoraConfig(r=2, target_modules=["c_attn"])), tmp_path)
    from transformers import GPT2Config, GPT2LMHeadModel

    other = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=48, n_head=4, vocab_size=120, n_positions=64))
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.attn\.c_attn\.lora_A\.weight.*shape"):
        load_adapter(other, tmp_path)


def test_bad_config_field(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "IA3"}')
    with pytest.raises(ValueError, match="peft_type"):
        load_adapter(tiny_gpt2(), tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA",\n "r": }')
    with pytest.raises(ValueError, match="line 2"):
        load_adapter(tiny_gpt2(), tmp_path)


def test_autocast_inference_caches_casts_until_the_weights_change(ids):
    """Under autocast without autograd, the half-precision copies of A and B are cached; an in-place change
    of B must invalidate them (the result equals the uncached path with autograd on)."""
    model = apply(tiny_gpt2(), LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc"]))
    _randomise_b(model)

    def run(grad: bool) -> torch.Tensor:
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=ids).logits.float().detach()

    first = run(False)
    torch.testing.assert_close(first, run(True))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(3)
    changed = run(False)
    assert not torch.allclose(changed, first)
    torch.testing.assert_close(changed, run(True))


def assert_compiled_inference_is_one_graph(model: nn.Module, ids: torch.Tensor) -> None:
    """Compiled autocast inference of a LoRA model: one graph, no recompiles, outputs equal to eager."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    with torch.no_grad(), torch.autocast(ids.device.type, dtype=torch.bfloat16):
        expected = model(input_ids=ids, use_cache=False).logits.float()
        for _ in range(2):
            got = compiled(input_ids=ids, use_cache=False).logits.float()
    assert counter.frame_count == 1, f"{counter.frame_count} graphs (graph breaks or recompiles)"
    torch.testing.assert_close(got, expected)


def test_compiled_autocast_inference_is_one_graph(ids):
    """The inference cast cache keys on data pointers, which torch.compile cannot trace: under compile the
    layer must skip it, or every adapted layer breaks the graph (measured on an H200: compiled inference
    +251% over the base model instead of peft's +103%)."""
    model = apply(tiny_gpt2(), LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc"])).eval()
    _randomise_b(model)
    assert_compiled_inference_is_one_graph(model, ids)


def test_parametrized_base_weight_is_read_through_its_parametrization():
    """The layer reads parameters from the modules' dicts for speed; a parametrized weight (not in that
    dict) must still be computed by its parametrization, and parameters replaced by assignment be seen."""
    from torch.nn.utils import parametrize

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    model = nn.Sequential(nn.Linear(6, 4))
    parametrize.register_parametrization(model[0], "weight", Double())
    model = apply(model, LoraConfig(r=2, alpha=4, target_modules=["0"]))
    layer = model[0]
    _randomise_b(model)
    x = torch.randn(3, 6)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    base = layer.base_layer
    expected = x @ (2 * base.parametrizations.weight.original).T + base.bias + (x @ a.T @ b.T) * 2.0
    torch.testing.assert_close(model(x), expected)
    layer.lora_B["default"].weight = nn.Parameter(torch.ones_like(b))  # a new Parameter object
    expected = (x @ (2 * base.parametrizations.weight.original).T + base.bias
                + (x @ a.T @ torch.ones_like(b).T) * 2.0)
    torch.testing.assert_close(model(x), expected)


def test_peft_seq_cls_folder_loads_though_one_saved_head_name_is_absent(tmp_path, ids):
    # peft's SEQ_CLS task saves modules_to_save ["classifier", "score"]; GPT-2 has only "score"
    from transformers import GPT2Config, GPT2ForSequenceClassification

    def make():
        torch.manual_seed(0)
        return GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=120,
                                                        n_positions=64, pad_token_id=0, num_labels=3)).eval()

    theirs = peft.get_peft_model(make(), peft.LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["c_attn"]))
    _randomise_b(theirs)
    with torch.no_grad():
        theirs.base_model.model.score.modules_to_save["default"].weight.mul_(2.0)
    theirs.save_pretrained(tmp_path)
    assert "classifier" in json.loads((tmp_path / "adapter_config.json").read_text())["modules_to_save"]
    # peft's later releases add more head names ("pre_classifier"): every absent one is named, "score" is used
    absent = r"modules_to_save entries \[[^]]*'classifier'[^]]*\] match no module"
    with pytest.warns(UserWarning, match=absent) as w:
        ours = load_adapter(make(), tmp_path)
    assert not any("'score'" in str(x.message) for x in w)
    torch.testing.assert_close(ours(input_ids=ids).logits, theirs.eval()(input_ids=ids).logits,
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"modules_to_save \['nothing'\] matches no module"):
        apply(make(), LoraConfig(r=2, target_modules=["c_attn"], modules_to_save=["nothing"]))


# --- layers that read one input, grouped while training with dropout (methods/lora/fused.py) ---------------
def _fixed_keep_mask(shape, p, device="cpu"):
    """A stand-in for deepnotes' random keep mask: the same booleans for the same shape, so that peft's
    layers can be given the masks ours draw."""
    g = torch.Generator().manual_seed(int(torch.Size(shape).numel()))
    return (torch.rand(shape, generator=g) >= p).to(device)


class _FixedDropout(nn.Module):
    """peft's dropout module replaced by the fixed mask, kept values scaled by the inverse of the exact keep
    rate of deepnotes' 15-bit mask."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.gain = 1.0 / (1.0 - round(p * 2**15) / 2**15)
        self.p = p

    def forward(self, x):
        keep = _fixed_keep_mask(x.reshape(-1, x.shape[-1]).shape, self.p).view(x.shape)
        return torch.where(keep, x, 0.0) * self.gain


def _fixed_masks(monkeypatch) -> list:
    """Every LoRA dropout of ours draws the fixed mask (also on tiny inputs); returns the list of the shapes
    drawn."""
    drawn = []

    def keep_mask(shape, p, device="cpu"):
        drawn.append(tuple(shape))
        return _fixed_keep_mask(shape, p, device)

    monkeypatch.setattr(fused, "SMALL_DROPOUT", 0)
    monkeypatch.setattr(fused, "keep_mask", keep_mask)
    return drawn


def _count_groups(monkeypatch, groups: list) -> None:
    """Record the size of every group the layers compute."""

    def counted(x, p, members):
        groups.append(len(members))
        return fused.group_lora(x, p, members)

    monkeypatch.setattr(lora_layer, "group_lora", counted)


@pytest.mark.parametrize("fuse", [True, False])
def test_qwen2_dropout_step_matches_peft_given_the_same_masks(ids, monkeypatch, fuse):
    """q/k/v and gate/up compute as groups with one dropout mask each (fuse True) or one layer at a time:
    either way, peft's layers given the same masks give the same outputs and gradients."""
    drawn = _fixed_masks(monkeypatch)
    groups = []
    _count_groups(monkeypatch, groups)
    cfg = LoraConfig(r=4, alpha=8, dropout=0.25, target_modules=list(LAYOUTS["qwen2"].lora))
    ours = apply(tiny_qwen2(), cfg).train()
    for m in ours.modules():
        if isinstance(m, lora_layer.LoraLayer):
            m.fuse = fuse
    _randomise_b(ours)
    theirs = peft.get_peft_model(tiny_qwen2(), _peft_config(cfg)).train()
    _copy_lora_weights(ours, theirs)
    for m in theirs.modules():
        if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict):
            m.lora_dropout["default"] = _FixedDropout(0.25)
    _assert_same_logits_and_lora_grads(ours, theirs, ids)
    # two blocks: one mask for q/k/v, o, gate/up, down each when grouped; seven when not
    assert groups == ([3, 2] * 2 if fuse else [])
    assert len(drawn) == (4 if fuse else 7) * 2


def test_grouped_step_equals_the_layers_alone_given_the_same_masks(ids, monkeypatch):
    _fixed_masks(monkeypatch)
    cfg = LoraConfig(r=4, alpha=8, dropout=0.25, target_modules=list(LAYOUTS["qwen2"].lora))
    results = []
    for fuse in (True, False):
        model = apply(tiny_qwen2(), cfg).train()
        _randomise_b(model)
        for m in model.modules():
            if isinstance(m, lora_layer.LoraLayer):
                m.fuse = fuse
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        results.append((out.logits, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (logits_a, grads_a), (logits_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b, atol=1e-6, rtol=0)
    assert grads_a.keys() == grads_b.keys()
    for n in grads_a:
        torch.testing.assert_close(grads_a[n], grads_b[n], atol=1e-6, rtol=0)


def test_grouped_layers_compute_alone_on_another_or_changed_input(monkeypatch):
    """The group's cache hands a sibling its output only for the very tensor the group computed on,
    unchanged; a model holding cached outputs still copies; the grouping adds no state-dict key."""
    _fixed_masks(monkeypatch)
    model = apply(tiny_qwen2(), LoraConfig(r=4, alpha=8, dropout=0.25,
                                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])).train()
    _randomise_b(model)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.siblings is attn.k_proj.siblings is attn.v_proj.siblings
    assert attn.q_proj.siblings.members == (attn.q_proj, attn.k_proj, attn.v_proj)
    assert attn.o_proj.siblings is None

    def alone(layer, x):
        layer.fuse = False
        try:
            return layer(x)
        finally:
            layer.fuse = True

    x1, x2 = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    torch.testing.assert_close(attn.q_proj(x1), alone(attn.q_proj, x1))  # computes k and v for x1 too
    torch.testing.assert_close(attn.k_proj(x2), alone(attn.k_proj, x2))
    copy.deepcopy(model)  # the cache (autograd's tensors) is not copied
    x1.add_(1.0)
    torch.testing.assert_close(attn.v_proj(x1), alone(attn.v_proj, x1))
    assert not any("sibling" in k for k in model.state_dict())


def test_grouped_layers_without_dropout_or_in_eval_run_alone(ids, monkeypatch):
    """Without dropout there is no mask to share (a group measured no faster: docs/peft.md), so the layers
    run one at a time, as in inference."""
    groups = []
    _count_groups(monkeypatch, groups)
    model = apply(tiny_qwen2(), LoraConfig(r=4, alpha=8, target_modules=list(LAYOUTS["qwen2"].lora)))
    model.train()(input_ids=ids, labels=ids).loss.backward()
    model2 = apply(tiny_qwen2(), LoraConfig(r=4, alpha=8, dropout=0.25, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        model2.eval()(input_ids=ids)
    assert groups == []
