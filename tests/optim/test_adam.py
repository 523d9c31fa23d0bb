"""deepnotes.optim.Adam / AdamW vs torch.optim.Adam / AdamW; their three code paths against each other."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.core import load_checkpoint, save_checkpoint
from deepnotes.optim import Adam, AdamW

PAIRS = {"adam": (Adam, torch.optim.Adam), "adamw": (AdamW, torch.optim.AdamW)}
SHAPES = [(6, 5), (5,), (3, 2, 4), ()]


def make_problem(seed: int, dtype: torch.dtype = torch.float64, shapes=SHAPES):
    """Initial parameters and a noisy least-squares loss over them: a fresh problem per seed."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    targets = [torch.randn(s, generator=gen, dtype=dtype) * 3 for s in shapes]
    scales = [torch.rand(s, generator=gen, dtype=dtype) * 10 for s in shapes]  # uneven curvature

    def set_grads(params: list[torch.Tensor], step: int) -> None:
        noise_gen = torch.Generator().manual_seed(seed * 1000 + step)
        for p, t, c in zip(params, targets, scales, strict=True):
            noise = torch.randn(p.shape, generator=noise_gen, dtype=dtype)
            p.grad = c * (p.detach() - t) + noise  # gradient of 0.5 c (p - t)^2 plus noise

    return init, set_grads


def run(opt_cls, init, set_grads, steps: int, groups=None, **kw):
    params = [p.clone().requires_grad_() for p in init]
    spec = params if groups is None else [dict(params=[params[i] for i in idx], **g) for idx, g in groups]
    opt = opt_cls(spec, **kw)
    for k in range(steps):
        set_grads(params, k)
        opt.step()
    return params, opt


def max_rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(((x.detach() - y.detach()).abs() / y.detach().abs().clamp_min(1e-12)).max().item()
               for x, y in zip(a, b, strict=True))


hyper = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.3),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "weight_decay": st.sampled_from([0.0, 1e-4, 0.01, 0.3]),
    "amsgrad": st.booleans(),
    "maximize": st.booleans(),
})


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(PAIRS)), kw=hyper, foreach=st.booleans(), seed=st.integers(0, 10_000))
def test_matches_torch_over_200_steps(kind, kw, foreach, seed):
    ours_cls, ref_cls = PAIRS[kind]
    init, set_grads = make_problem(seed)
    ours, _ = run(ours_cls, init, set_grads, 200, foreach=foreach, **kw)
    ref, _ = run(ref_cls, init, set_grads, 200, foreach=False, **kw)
    assert max_rel_err(ours, ref) < 1e-6


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_param_groups_with_own_hyperparameters_match_torch(kind):
    ours_cls, ref_cls = PAIRS[kind]
    init, set_grads = make_problem(3)
    groups = [([0, 2], dict(lr=0.05, weight_decay=0.2, amsgrad=True)), ([1, 3], dict(betas=(0.5, 0.9)))]
    ref, _ = run(ref_cls, init, set_grads, 200, groups=groups, lr=1e-2, weight_decay=0.01)
    for mode in (dict(foreach=False), dict(fused=True)):  # fused: one pack layout per group
        ours, _ = run(ours_cls, init, set_grads, 200, groups=groups, lr=1e-2, weight_decay=0.01, **mode)
        assert max_rel_err(ours, ref) < 1e-6, mode


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("amsgrad", [False, True])
def test_float32_matches_torch(kind, amsgrad):
    ours_cls, ref_cls = PAIRS[kind]
    init, set_grads = make_problem(5, dtype=torch.float32)
    kw = dict(lr=3e-3, weight_decay=0.05, amsgrad=amsgrad)
    ours, _ = run(ours_cls, init, set_grads, 200, **kw)
    ref, _ = run(ref_cls, init, set_grads, 200, **kw)
    assert max_rel_err(ours, ref) < 1e-6


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_complex_parameters_match_torch(kind):
    ours_cls, ref_cls = PAIRS[kind]
    init, set_grads = make_problem(11, dtype=torch.complex128, shapes=[(4, 3), (2,)])
    ref, _ = run(ref_cls, init, set_grads, 50, foreach=False, lr=1e-2, weight_decay=0.1)
    for mode in (dict(foreach=False), dict(foreach=True), dict(fused=True)):
        ours, _ = run(ours_cls, init, set_grads, 50, lr=1e-2, weight_decay=0.1, **mode)
        assert max_rel_err(ours, ref) < 1e-6, mode


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_fused_with_mixed_dtypes_and_uneven_step_counts(kind):
    """One group, float32 + float64 tensors, one of which gets a gradient only every other step: the fused
    path packs per (step count, dtype) and must still match torch's optimizer."""
    ours_cls, ref_cls = PAIRS[kind]
    init32, grads32 = make_problem(7, dtype=torch.float32, shapes=[(8, 3), (3,)])
    init64, grads64 = make_problem(8, dtype=torch.float64, shapes=[(5,), (2, 2)])

    def set_grads(params, step):
        grads32(params[:2], step)
        grads64(params[2:], step)
        if step % 2:
            params[1].grad = None

    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=True)
    ref, _ = run(ref_cls, init32 + init64, set_grads, 60, **kw)
    ours, _ = run(ours_cls, init32 + init64, set_grads, 60, fused=True, **kw)
    assert max_rel_err(ours[2:], ref[2:]) < 1e-10
    # float32: a different operation order rounds differently
    for a, b in zip(ours[:2], ref[:2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_foreach_equals_loop_across_mixed_dtypes(kind):
    """Float32 and float64 tensors in one group: foreach buckets them, and must give the loop's exact bits."""
    cls = PAIRS[kind][0]
    init32, grads32 = make_problem(7, dtype=torch.float32, shapes=[(8, 3), (3,)])
    init64, grads64 = make_problem(8, dtype=torch.float64, shapes=[(5,)])

    def set_grads(params, step):
        grads32(params[:2], step)
        grads64(params[2:], step)

    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)
    loop, _ = run(cls, init32 + init64, set_grads, 100, foreach=False, **kw)
    multi, _ = run(cls, init32 + init64, set_grads, 100, foreach=True, **kw)
    for a, b in zip(loop, multi, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("pack", ["packed", "per-tensor"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_matches_loop(amsgrad, pack, monkeypatch):
    """The torch.compile'd update: same numbers up to float64 rounding; a non-contiguous param falls back.

    Small tensors are packed into one buffer per step (the default on CPU for these sizes); "per-tensor"
    turns packing off so each tensor gets its own compiled call.
    """
    from deepnotes.optim import fused

    if pack == "per-tensor":
        monkeypatch.setitem(fused.PACK_BELOW, "cpu", 0)
    init, set_grads = make_problem(9)
    init = init + [torch.randn(4, 6, dtype=torch.float64).t()]  # non-contiguous
    base = set_grads

    def set_all(params, step):
        base(params[:-1], step)
        gen = torch.Generator().manual_seed(step)
        params[-1].grad = torch.randn(4, 6, dtype=torch.float64, generator=gen).t()

    for cls, maximize in ((Adam, False), (AdamW, True)):
        kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=amsgrad, maximize=maximize)
        loop, _ = run(cls, init, set_all, 100, foreach=False, **kw)
        fused, _ = run(cls, init, set_all, 100, fused=True, **kw)
        assert max_rel_err(fused, loop) < 1e-10


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("mode", ["loop", "foreach", "fused"])
def test_state_dict_round_trip_resumes_identically(kind, mode, tmp_path):
    """Through our safetensors checkpoint; with fused=True the saved state tensors are views of flat
    buffers."""
    cls = PAIRS[kind][0]
    init, set_grads = make_problem(21)
    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=True, foreach=mode == "foreach", fused=mode == "fused")
    straight, _ = run(cls, init, set_grads, 100, **kw)

    params, opt = run(cls, init, set_grads, 50, **kw)
    path = save_checkpoint(tmp_path / "ckpt.safetensors",
                           {"params": [p.detach() for p in params], "optim": opt.state_dict()}, {"step": 50})
    state, _ = load_checkpoint(path, torch.device("cpu"))
    resumed = [p.clone().requires_grad_() for p in state["params"]]
    opt2 = cls(resumed, **kw)
    opt2.load_state_dict(state["optim"])
    for k in range(50, 100):
        set_grads(resumed, k)
        opt2.step()
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_fused_keeps_small_tensors_state_in_one_buffer():
    """The fused path's packs: the state of small tensors are views of one flat buffer per key, and one
    vector holds their step counters; a large tensor keeps its own state."""
    from deepnotes.optim import fused

    init, set_grads = make_problem(3, shapes=[(6, 5), (5,), (3, 2, 4)])
    params, opt = run(AdamW, init + [torch.zeros(fused.PACK_BELOW["cpu"], dtype=torch.float64)],
                      lambda ps, k: (set_grads(ps[:3], k), setattr(ps[3], "grad", torch.ones_like(ps[3]))), 3,
                      fused=True)
    small, large = params[:3], params[3]
    for key in ("exp_avg", "exp_avg_sq", "step"):
        storages = {opt.state[p][key].untyped_storage().data_ptr() for p in small}
        assert len(storages) == 1, key
        assert opt.state[large][key].untyped_storage().data_ptr() not in storages
    assert [opt.state[p]["step"].item() for p in params] == [3.0] * 4


def _restart_and_edit(opt_cls, init, set_grads, **kw):
    """30 steps; snapshot; 5 more; load the snapshot back into the same optimizer (params restored); make one
    step counter lag behind; 20 more steps. Exercises every way the fused path's layout can go stale."""
    params, opt = run(opt_cls, init, set_grads, 30, **kw)
    saved_params, saved_state = [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())
    for k in range(30, 35):
        set_grads(params, k)
        opt.step()
    with torch.no_grad():
        for p, q in zip(params, saved_params, strict=True):
            p.copy_(q)
    opt.load_state_dict(saved_state)
    for k in range(30, 50):
        if k == 40:
            opt.state[params[1]]["step"].fill_(5.0)  # bias correction of one tensor restarts from step 5
        set_grads(params, k)
        opt.step()
    return params


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_fused_after_load_state_dict_and_edited_step_counters(kind):
    cls = PAIRS[kind][0]
    init, set_grads = make_problem(5)
    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=True)
    loop = _restart_and_edit(cls, init, set_grads, foreach=False, **kw)
    fused = _restart_and_edit(cls, init, set_grads, fused=True, **kw)
    assert max_rel_err(fused, loop) < 1e-10


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_chunks_of_large_tensors(amsgrad, monkeypatch):
    """With nothing packed, tensors go CHUNK per compiled call (here 3: two chunks and a remainder of 2),
    equal and unequal sizes mixed, and must match the loop."""
    from deepnotes.optim import fused

    monkeypatch.setitem(fused.PACK_BELOW, "cpu", 0)
    monkeypatch.setattr(fused, "CHUNK", 3)
    init, set_grads = make_problem(13, shapes=[(4, 3), (12,), (7,), (2, 2), (12,), (3, 3, 3), (5,), (4, 3)])
    for cls in (Adam, AdamW):
        kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=amsgrad)
        loop, _ = run(cls, init, set_grads, 40, foreach=False, **kw)
        fused, _ = run(cls, init, set_grads, 40, fused=True, **kw)
        assert max_rel_err(fused, loop) < 1e-10


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("direction", ["torch->ours", "ours fused->torch"])
def test_state_dicts_are_interchangeable_with_torch(kind, direction):
    """30 steps of one optimizer, its state dict loaded into the other, 30 more == 60 steps of torch's. Our
    fused path's state dict holds views of flat buffers."""
    ours_cls, ref_cls = PAIRS[kind]
    if direction == "torch->ours":
        first, second, kw = ref_cls, ours_cls, {}
    else:
        first, second, kw = ours_cls, ref_cls, dict(fused=True)
    init, set_grads = make_problem(4)
    ref, _ = run(ref_cls, init, set_grads, 60, lr=1e-2, weight_decay=0.1)
    params, before = run(first, init, set_grads, 30, lr=1e-2, weight_decay=0.1, **kw)
    after = second(params, lr=1e-2, weight_decay=0.1)
    after.load_state_dict(copy.deepcopy(before.state_dict()))
    for k in range(30, 60):
        set_grads(params, k)
        after.step()
    assert max_rel_err(params, ref) < 1e-6


def test_closure_and_params_without_grad():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    frozen = torch.nn.Parameter(torch.tensor([3.0]))
    opt = AdamW([w, frozen], lr=0.1, weight_decay=0.5)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert frozen.item() == 3.0 and len(opt.state[frozen]) == 0  # no grad: untouched, no state
    assert torch.all(w.abs() < torch.tensor([1.0, 2.0]))


def test_adam_l2_decay_equals_gradient_of_penalty():
    """Adam's weight_decay is exactly the gradient of 0.5 lambda ||p||^2 added to the loss."""
    init, set_grads = make_problem(2)

    def with_penalty(params, step):
        set_grads(params, step)
        for p in params:
            p.grad = p.grad + 0.3 * p.detach()

    decayed, _ = run(Adam, init, set_grads, 100, lr=1e-2, weight_decay=0.3)
    penalised, _ = run(Adam, init, with_penalty, 100, lr=1e-2, weight_decay=0.0)
    assert max_rel_err(decayed, penalised) < 1e-12


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(betas=(1.0, 0.9)), dict(betas=(0.9, -0.1)),
                                 dict(eps=-1e-8), dict(weight_decay=-0.1), dict(foreach=True, fused=True)])
def test_invalid_hyperparameters_are_rejected(bad):
    with pytest.raises(ValueError):
        AdamW([torch.nn.Parameter(torch.zeros(2))], **bad)


def test_sparse_gradients_are_rejected_with_advice():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.tensor([1.0]), (3,), check_invariants=True)
    with pytest.raises(RuntimeError, match="SparseAdam"):
        Adam([p]).step()
