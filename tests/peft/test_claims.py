"""The peft claims' measurements: the merged-LoRA identity W' = W + (alpha/r) B A (a wrong merge is caught),
the Qwen1.5 shapes of the memory claim, the SVD of a fine-tuning delta, the adapter and merged-LoRA models."""

from __future__ import annotations

import copy

import torch

from deepnotes.core import ClaimContext
from deepnotes.peft import claims


def test_merge_identity_holds_and_a_wrong_merge_is_caught(tmp_path):
    ctx = ClaimContext(quick=True, seed=0, device=torch.device("cpu"), out_dir=tmp_path, claim_id="peft.t")
    base, lora, merged = claims._lora_models(ctx)
    worst, size = claims._weight_identity(lora, merged)
    assert worst < 1e-6 and size > 1e-4  # B was drawn at random: the update is not zero
    x = torch.randint(0, 8000, (1, 16))
    with torch.no_grad():
        assert torch.allclose(lora(input_ids=x).logits, merged(input_ids=x).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(base(input_ids=x).logits, merged(input_ids=x).logits, atol=1e-4)
        merged.transformer.h[0].attn.c_attn.weight.add_(1e-3)  # a merge off by a little
    assert claims._weight_identity(lora, merged)[0] > 1e-6


def _claim(claim_id):
    from deepnotes.core.claims import registered_claims

    return next(c for c in registered_claims(["peft"]) if c.id == claim_id)


def test_new_cost_and_svd_claims_are_registered_with_their_tests_and_sources():
    expected = {"peft.qwen_memory_figures": ("note", {"q7b", "q72b"}),
                "peft.svd_delta_vs_lora": ("note", {"storage", "score"}),
                "peft.adapter_inference_latency": ("paper", {"adapter_vs_merged", "merged_extra_params"})}
    for claim_id, (origin, deciding) in expected.items():
        c = _claim(claim_id)
        assert c.origin == origin and c.source.translation and c.paper is not None, claim_id
        assert {t.name for t in c.tests if t.decides} == deciding, claim_id
    memory = _claim("peft.qwen_memory_figures")
    assert "160GB" in memory.source.note and "1600GB" in memory.source.note
    assert all(t.bound == 1.5 for t in memory.tests if t.decides)  # "about": within 1.5x, fixed beforehand


def test_factor_is_symmetric_and_at_least_one():
    from deepnotes.peft.claims_cost import factor

    assert factor(160.0, 160.0) == 1.0
    assert factor(80.0, 160.0) == factor(320.0, 160.0) == 2.0


def test_qwen_shapes_give_the_parameter_counts_of_their_closed_form():
    from deepnotes.peft.claims_cost import QWEN15
    from deepnotes.peft.memory.estimate import meta_model, read_config

    counts = {}
    for size, cfg in QWEN15.items():
        h, i, n, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
        # per layer: q, k, v, o (h x h; q, k, v with biases), gate, up, down (h x i), two RMSNorms; plus
        # untied input and output embeddings and the final norm
        closed = 2 * v * h + n * (4 * h * h + 3 * h + 3 * h * i + 2 * h) + h
        model = meta_model(read_config(cfg), torch.bfloat16, "sdpa")
        counts[size] = sum(p.numel() for p in model.parameters())
        assert counts[size] == closed
    # Qwen1.5's published sizes: 7.7B and 72.3B
    assert (round(counts["7B"] / 1e9, 1), round(counts["72B"] / 1e9, 1)) == (7.7, 72.3)


def test_svd_merge_is_exact_at_full_rank_and_keeps_a_share_below_it():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Linear(8, 6))
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.1 * torch.randn_like(p))
    full = copy.deepcopy(base)
    stored, energy = claims.svd_merge(full, tuned, ["0", "1"], rank=8)
    assert stored == 8 * (8 + 12) + 8 * (6 + 8) and abs(energy - 1.0) < 1e-12
    for a, b in ((full[0], tuned[0]), (full[1], tuned[1])):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-6)
    low = copy.deepcopy(base)
    _, energy = claims.svd_merge(low, tuned, ["0"], rank=2)
    delta = (tuned[0].weight - base[0].weight).detach().double()
    s = torch.linalg.svdvals(delta)
    assert abs(energy - float((s[:2] ** 2).sum() / (s**2).sum())) < 1e-9
    assert torch.linalg.matrix_rank((low[0].weight - base[0].weight).double(), atol=1e-5) == 2
    assert torch.equal(low[1].weight, base[1].weight)  # a matrix not named keeps the base weight


def test_lora_matrices_reads_the_wrapped_layers_rank_and_stored_numbers():
    from transformers import GPT2Config, GPT2LMHeadModel

    from deepnotes.peft import LoraConfig, apply

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    apply(model, LoraConfig(r=4, alpha=8, target_modules=["c_attn"]))
    paths, rank, stored = claims._lora_matrices(model)
    assert paths == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"] and rank == 4
    assert stored == 2 * 4 * (32 + 96)


def test_adapter_models_add_serial_layers_and_merged_lora_adds_nothing(tmp_path):
    from deepnotes.peft.claims_cost import adapter_models, thread_ms

    ctx = ClaimContext(quick=True, seed=0, device=torch.device("cpu"), out_dir=tmp_path, claim_id="peft.t")
    models = adapter_models(ctx)
    count = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert count["merged_lora"] == count["base"] < count["adapter"]
    x = torch.randint(0, 8000, (1, 8))
    with torch.no_grad():
        out = {k: m(input_ids=x).logits for k, m in models.items()}
    assert not torch.allclose(out["adapter"], out["base"], atol=1e-4)  # the adapters compute something
    assert not torch.allclose(out["merged_lora"], out["base"], atol=1e-4)  # and so does the merged update
    assert thread_ms(lambda: models["base"](input_ids=x), torch.device("cpu"), 2) > 0
