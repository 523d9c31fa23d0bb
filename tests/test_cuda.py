"""The CUDA path of every topic, checked against the CPU path or the anchor library on the same GPU.

CI has no GPU, so these run only where CUDA is present (a lent accelerator runs them with
``python -m pytest tests/test_cuda.py``); everything they exercise is also tested on CPU elsewhere.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def cuda():
    torch.backends.cuda.matmul.allow_tf32 = False  # compare float32 results, not TF32 ones
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda")


def _problem(device, seed=0, shapes=((64, 32), (32,), (7, 3, 5), (1000,))):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).to(device) for s in shapes]
    grads = [[torch.randn(s, generator=gen).to(device) for s in shapes] for _ in range(30)]
    return params, grads


@pytest.mark.parametrize("mode", ["loop", "foreach", "fused", "fused_chunks"])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_optimizers_match_torch_on_cuda(cuda, name, mode, monkeypatch):
    """fused: everything packed; fused_chunks: nothing packed, tensors go two per compiled call."""
    from deepnotes import optim
    from deepnotes.optim import fused

    if mode == "fused_chunks":
        monkeypatch.setitem(fused.PACK_BELOW, "cuda", 0)
        monkeypatch.setattr(fused, "CHUNK", 2)
    init, grads = _problem(cuda)
    ours = [p.clone().requires_grad_() for p in init]
    ref = [p.clone().requires_grad_() for p in init]
    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=False)
    opt = getattr(optim, name)(ours, foreach=mode == "foreach", fused=mode.startswith("fused"), **kw)
    ref_opt = getattr(torch.optim, name)(ref, **kw)
    for g in grads:
        for p, q, gi in zip(ours, ref, g, strict=True):
            p.grad, q.grad = gi.clone(), gi.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref, strict=True):
        assert p.device.type == "cuda"
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lora_matches_peft_on_cuda_and_merges(cuda):
    from transformers import GPT2Config, GPT2LMHeadModel

    import peft
    from deepnotes import peft as dpeft

    def base():
        torch.manual_seed(0)
        cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64)
        return GPT2LMHeadModel(cfg).to(cuda).eval()

    ids = torch.randint(0, 100, (2, 16), device=cuda)
    ours = dpeft.apply(base(), dpeft.LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc"]))
    theirs = peft.get_peft_model(base(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"],
                                                         fan_in_fan_out=True))
    with torch.no_grad():  # same non-zero A and B in both, so the update is really exercised
        for (n1, p1), (n2, p2) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            if "lora_" in n1:
                assert n2.endswith(n1)  # peft's names carry a "base_model.model." prefix
                p1.normal_(0, 0.1)
                p2.copy_(p1)
    a, b = ours(input_ids=ids).logits, theirs(input_ids=ids).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the mixed-precision path used for training
        assert torch.isfinite(ours(input_ids=ids).logits).all()
    dpeft.merge(ours)
    torch.testing.assert_close(ours(input_ids=ids).logits, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["tsn", "tsm", "tea", "stm", "tdn", "tam", "c3d", "i3d", "r2plus1d"])
def test_video_models_agree_with_cpu(cuda, name):
    from deepnotes.video import build_model

    torch.manual_seed(0)
    model = build_model(name, 5, num_segments=4, depth=10, width=8, stem_stride=1, input_size=32).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to(cuda)(x.to(cuda))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)
    model.train()
    model(x.to(cuda)).sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("head", ["rle", "regression", "heatmap"])
def test_pose_heads_train_step_on_cuda(cuda, head):
    from deepnotes.optim import AdamW
    from deepnotes.pose.model import PoseConfig, PoseModel

    torch.manual_seed(0)
    model = PoseModel(PoseConfig(head=head, input_hw=(64, 48), heatmap_hw=(16, 12), depth=10, width=8,
                                 deconv_channels=16))
    image = torch.randn(4, 3, 64, 48)
    keypoints = torch.rand(4, 17, 2) * torch.tensor([48.0, 64.0])
    weight = torch.ones(4, 17)
    model.eval()
    with torch.no_grad():
        cpu_loss = model.loss(model(image), keypoints, weight)["loss"]
        model.to(cuda)
        gpu_loss = model.loss(model(image.to(cuda)), keypoints.to(cuda), weight.to(cuda))["loss"]
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=1e-3, atol=1e-3)
    model.train()
    opt = AdamW(model.parameters(), lr=1e-3, fused=True)
    loss = model.loss(model(image.to(cuda)), keypoints.to(cuda), weight.to(cuda))["loss"]
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_kernel_profile_counts_device_kernels(cuda):
    """The benchmarks' --profile split: a matmul's kernel time is found and named, annotations excluded."""
    from deepnotes.core.timing import kernel_profile

    a = torch.randn(2048, 2048, device=cuda)
    total, ranked = kernel_profile(lambda: a @ a, cuda, calls=3)
    assert ranked and total >= ranked[0][1] > 0
    name, _, launches = ranked[0]
    assert launches == 1 and any(k in name.lower() for k in ("gemm", "cutlass", "matmul")), ranked


def test_compiled_lora_inference_is_one_graph_on_cuda(cuda):
    """As tests/peft's CPU test: under torch.compile the inference cast cache is skipped (it broke the graph
    per layer and made compiled unmerged inference 3.5x the base on an H200)."""
    from deepnotes import peft as dpeft
    from tests.peft.conftest import tiny_gpt2
    from tests.peft.test_lora import _randomise_b, assert_compiled_inference_is_one_graph

    lora = dpeft.LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc"])
    model = dpeft.apply(tiny_gpt2().to(cuda).eval(), lora)
    _randomise_b(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), device=cuda)
    assert_compiled_inference_is_one_graph(model, ids)
