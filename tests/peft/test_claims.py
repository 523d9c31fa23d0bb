"""The merged-LoRA claim measures the identity W' = W + (alpha/r) B A, and would catch a wrong merge."""

from __future__ import annotations

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
