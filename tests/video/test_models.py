import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.timing import count_flops
from deepnotes.video.experiments import QUICK, costs, reference
from deepnotes.video.models import MODELS, build_model, model_cost
from deepnotes.video.models.base import fold, unfold
from deepnotes.video.models.inflate import conv3d_like
from deepnotes.video.models.ops import TemporalConv, previous_minus_now, temporal_taps
from deepnotes.video.models.r2plus1d import factorised
from deepnotes.video.models.tam import TAM
from deepnotes.video.models.tsm import naive_shift, temporal_shift

SMALL = {"num_segments": 4, "depth": 10, "width": 4, "stem_stride": 1, "input_size": 16, "dropout": 0.0}
# single-stream recognisers of RGB clips, by family; the temporal ones must see frame order
RGB_MODELS = MODELS.names(family="2d") + MODELS.names(family="3d")
ORDER_AWARE = MODELS.names(family="2d", temporal=True) + MODELS.names(family="3d")


def _perturb(model):
    """Give zero-initialised residual branches (and BN) non-trivial values so every path is active."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.mark.parametrize("name", RGB_MODELS)
def test_every_model_maps_clips_to_logits_and_reports_cost(name):
    model = build_model(name, 5, **SMALL)
    x = torch.randn(2, 3, 4, 16, 16)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    cost = model_cost(model)
    assert cost["params"] == sum(p.numel() for p in model.parameters()) and cost["flops"] > 0


def test_costs_times_models_together_and_counts_each_one():
    """The cost claim's table: one row per model, in order, FLOPs of one clip, a latency per clip."""
    setup = reference(QUICK, depth=10, width=4, size=16, segments=4, stem_stride=1)  # = SMALL
    rows = costs(["tsn", "i3d"], setup, torch.device("cpu"), rounds=2)
    assert [r["model"] for r in rows] == ["tsn", "i3d"]
    for r in rows:
        model = build_model(r["model"], 8, **SMALL).eval()
        assert r["params"] == sum(p.numel() for p in model.parameters())
        assert r["flops"] == count_flops(model, torch.randn(1, 3, 4, 16, 16))
        assert r["latency_ms"] > 0
    assert rows[1]["flops"] > 1.5 * rows[0]["flops"]  # I3D's inflated convolutions


def test_tsn_is_blind_to_frame_order_and_temporal_models_are_not():
    x = torch.randn(2, 3, 4, 16, 16)
    perm = x[:, :, [2, 0, 3, 1]]
    assert MODELS.names(temporal=False) == ["tsn"]
    for name in MODELS.names(temporal=False):
        blind = _perturb(build_model(name, 5, **SMALL))
        assert torch.allclose(blind(x), blind(perm), atol=1e-5)
    for name in ORDER_AWARE:
        model = _perturb(build_model(name, 5, **SMALL))
        with torch.no_grad():
            for p in model.parameters():  # zero-init convs too (identity/zero branches start inert)
                if p.ndim > 1 and p.abs().sum() == 0:
                    p.normal_(0, 0.3)
        assert not torch.allclose(model(x), model(perm), atol=1e-4), name


def test_shift_matches_naive_and_moves_the_right_channels():
    x = torch.randn(2 * 3, 16, 2, 2)  # N=2, T=3, C=16 -> fold 2
    out = temporal_shift(x, 3)
    assert torch.equal(out, naive_shift(x, 3))
    v, o = x.view(2, 3, 16, 2, 2), out.view(2, 3, 16, 2, 2)
    assert torch.equal(o[:, 0, :2], v[:, 1, :2]) and torch.all(o[:, 2, :2] == 0)  # from the next frame
    assert torch.equal(o[:, 1, 2:4], v[:, 0, 2:4]) and torch.all(o[:, 0, 2:4] == 0)  # from the previous frame
    assert torch.equal(o[:, :, 4:], v[:, :, 4:])
    tsn, tsm = build_model("tsn", 5, **SMALL), build_model("tsm", 5, **SMALL)
    x = torch.randn(1, 3, 4, 16, 16)
    assert count_flops(tsn, x) == count_flops(tsm, x)  # the shift is free in FLOPs


def test_temporal_conv_equals_depthwise_conv3d():
    tc = TemporalConv(6, t=5)
    ref = nn.Conv3d(6, 6, (3, 1, 1), padding=(1, 0, 0), groups=6, bias=False)
    ref.weight.data.copy_(tc.weight.data.view(6, 1, 3, 1, 1))
    x = torch.randn(2 * 5, 6, 4, 4)
    assert torch.allclose(tc(x), unfold(ref(fold(x, 5))), atol=1e-6)


def test_tdn_short_term_branch_starts_silent():
    """S-TDM ends in a zero-init BN: at init TDN's stem output is the 2D stem's."""
    model = build_model("tdn", 5, **SMALL).eval()
    clip = torch.randn(2, 3, 4, 16, 16)
    assert torch.all(model.stem_fusion(clip, (16, 16)) == 0)


def test_tam_kernels_are_distributions_per_clip_and_channel():
    tam = TAM(8, t=4).eval()
    tam(torch.randn(3 * 4, 8, 5, 5))
    k = tam.last_kernel
    assert k.shape == (3, 8, 3) and torch.allclose(k.sum(-1), torch.ones(3, 8)) and (k >= 0).all()


def test_i3d_inflation_reproduces_the_2d_conv_on_a_static_video():
    conv2d = nn.Conv2d(3, 4, 3, padding=1)
    conv3d = conv3d_like(conv2d, 3, weight_from_2d=True)
    img = torch.randn(1, 3, 8, 8)
    video = img[:, :, None].repeat(1, 1, 5, 1, 1)
    out = conv3d(video)
    assert torch.allclose(out[:, :, 2], conv2d(img), atol=1e-5)  # inner frames: the kernel sums to the 2D one


def test_i3d_patterns_inflate_the_kernels_they_name():
    cfg = {**SMALL, "stem_stride": 4, "input_size": 32}
    kernels = {name: {n: m.kernel_size for n, m in build_model(name, 5, **cfg).named_modules()
                      if isinstance(m, nn.Conv3d)} for name in ("i3d", "i3d_full")}
    part, full = kernels["i3d"], kernels["i3d_full"]
    assert part.keys() == full.keys()
    assert full["backbone.stem.0"] == (7, 7, 7) and part["backbone.stem.0"] == (3, 7, 7)
    for name, k in full.items():
        assert k[0] == k[1] == k[2], name  # every N x N kernel became N x N x N, 1x1 ones stay 1x1x1
        assert part[name][1:] == k[1:]  # same spatial kernels; only the temporal extent differs
        assert part[name][0] == (3 if name.endswith("conv1.0") or name == "backbone.stem.0" else 1), name
    x = torch.zeros(1, 3, 4, 32, 32)
    tsn, i3d, i3d_full = (count_flops(build_model(n, 5, **cfg), x) for n in ("tsn", "i3d", "i3d_full"))
    # (the ratios depend on how much of the net the stem is)
    assert tsn < i3d < i3d_full and i3d_full > 1.5 * i3d


def test_full_inflation_reproduces_the_2d_network_on_a_static_video():
    """Inflated from the 2D weights (w / k over k frames), a video of one repeated frame gives the 2D net's
    features at frames far enough from the clip ends that no temporal kernel reaches past them."""
    from deepnotes.video.models import i3d
    from deepnotes.video.models.base import ModelConfig, resnet

    # depth 10 with a 3x3 stem: 9 temporal convs of kernel 3 reach 9 frames each way; frame 10 of 21 is clear
    cfg = ModelConfig("i3d_full", 5, **{**SMALL, "num_segments": 21})
    torch.manual_seed(0)
    net2d = _perturb(resnet(cfg))
    torch.manual_seed(0)  # the 3D build draws the same 2D init, then inflates it
    net3d = _perturb(i3d.build_full(cfg, weight_from_2d=True)).backbone
    img = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        out2d = net2d(img)
        out3d = net3d(img[:, :, None].repeat(1, 1, 21, 1, 1))
    assert torch.allclose(out3d[:, :, 10], out2d, atol=1e-5)
    assert not torch.allclose(out3d[:, :, 0], out2d, atol=1e-3)  # at the ends zero padding does reach in


def test_r2plus1d_keeps_the_3d_parameter_count():
    conv2d = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    fact = factorised(conv2d)
    full = 3 * 3 * 3 * 16 * 32
    n = sum(p.numel() for m in fact if isinstance(m, nn.Conv3d) for p in m.parameters())
    assert abs(n - full) / full < 0.05
    assert fact(torch.randn(1, 16, 4, 6, 6)).shape == (1, 32, 4, 6, 6)


def test_registry_is_extensible_and_checks_names(monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'x3d'"):
        build_model("x3d", 3)
    with pytest.raises(ValueError, match="unknown model option"):
        build_model("tsn", 3, depthh=10)
    # a registration made here is gone after the test (the registry is module state)
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    monkeypatch.setattr(MODELS, "_enum", None)
    MODELS.register("tsn_copy", MODELS["tsn"], family="2d", temporal=False)
    assert build_model("tsn_copy", 3, **SMALL).cfg.name == "tsn_copy"
    assert "tsn_copy" in MODELS.names(family="2d") and "tsn_copy" in MODELS.choices().__members__
    assert MODELS.info("tsn_copy")["modality"] == "rgb"  # the attributes it did not name take the defaults


def test_registry_refuses_a_second_model_under_a_taken_name_and_unknown_attributes(monkeypatch):
    from deepnotes.video.models import tam, tsn

    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # whatever happens here stays here

    with pytest.raises(ValueError, match="video model 'tsm' is registered twice"):
        MODELS.register("tsm", tsn.build, family="2d")
    with pytest.raises(ValueError, match="registered twice"):

        @MODELS.register("tsn", family="2d")
        def build(cfg):  # another function of another name: not a re-import of tsn's
            return tam.build(cfg)

    assert MODELS["tsm"] is not tsn.build and MODELS["tsn"] is tsn.build
    MODELS.register("tam", tam.build, family="2d")  # the same builder again (a module reloaded): quiet
    with pytest.raises(ValueError, match="family must be one of 2d, 3d, two_stream"):
        MODELS.register("x", tsn.build, family="4d")
    with pytest.raises(ValueError, match="unknown attribute.*tempora"):
        MODELS.register("x", tsn.build, family="2d", tempora=False)
    assert "x" not in MODELS


def test_families_and_the_lists_derived_from_them():
    """The tuples other modules import are the registry's families (so a new model joins them by its
    registration alone); TSN is the one order-blind 2D model, i3d_full a 3D variant the claims only cost."""
    from deepnotes.video.models import CONFIGS, FAMILIES, MODELS_3D, TEMPORAL_2D, VARIANTS_3D
    from deepnotes.video.models.base import AfterReluConfig
    from deepnotes.video.models.tea import TEAConfig
    from deepnotes.video.models.tsn import TSNConfig
    from deepnotes.video.models.two_stream import TwoStreamConfig

    assert {MODELS.info(n)["family"] for n in MODELS} == set(FAMILIES)
    assert MODELS.names(family="2d")[0] == "tsn" and MODELS.names(temporal=False) == ["tsn"]
    assert TEMPORAL_2D == tuple(MODELS.names(family="2d", temporal=True))
    assert {"tsm", "tea", "stm", "tdn", "tam"} <= set(TEMPORAL_2D)
    assert MODELS_3D == tuple(MODELS.names(family="3d", variant=False))
    assert {"c3d", "i3d", "r2plus1d"} <= set(MODELS_3D)
    assert VARIANTS_3D == tuple(MODELS.names(family="3d", variant=True)) and "i3d_full" in VARIANTS_3D
    assert MODELS.names(family="two_stream") == ["two_stream"]
    # TSN: its consensus option; TEA: its pass-through shift, excitation and ReLU placement; TDN, TAM: theirs
    assert CONFIGS == {"two_stream": TwoStreamConfig, "tsn": TSNConfig, "tea": TEAConfig,
                       "tdn": AfterReluConfig, "tam": AfterReluConfig}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_builds_runs_and_trains_on_a_tiny_clip(name):
    """Whatever its family: the clip has the channels its config asks for (RGB + 2L flow for two_stream),
    and training's one call, ``model.loss(out, labels)``, gives a finite scalar with gradients."""
    model = build_model(name, 3, **SMALL)
    x = torch.randn(2, model.cfg.in_channels, 4, 16, 16)
    out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    labels = torch.tensor([0, 2])
    loss = model.loss(out, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    if MODELS.info(name)["family"] != "two_stream":  # a plain recogniser's loss is cross-entropy
        torch.testing.assert_close(loss, F.cross_entropy(out, labels))


def test_training_hooks_of_the_two_stream_entry_and_of_a_plain_one():
    """What training reads instead of checking names: the clips' modality, the options it passes on, the
    extra validation views (each a module of the same input)."""
    two = MODELS.info("two_stream")
    assert two["modality"] == "two_stream" and two["views"] == ("rgb", "flow")
    assert two["options"] == ("stream", "new_length", "fusion")
    for name in RGB_MODELS:
        info = MODELS.info(name)
        options = ("consensus",) if name == "tsn" else ()  # TSN's segmental consensus, avg or max
        assert (info["modality"], info["options"], info["views"]) == ("rgb", options, ())
    model = build_model("two_stream", 3, stream="tsm", new_length=2, fusion="learned", **SMALL).eval()
    assert (model.cfg.stream, model.cfg.new_length, model.cfg.fusion) == ("tsm", 2, "learned")
    x = torch.randn(2, 3 + 2 * 2, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.view_model("rgb")(x), model.spatial(x[:, :3]))
        torch.testing.assert_close(model.view_model("flow")(x), model.temporal(x[:, 3:]))
    with pytest.raises(ValueError, match="stream must be rgb or flow"):
        model.view_model("depth")
    with pytest.raises(ValueError, match="has no view 'rgb'"):
        build_model("tsn", 3, **SMALL).view_model("rgb")
    with pytest.raises(ValueError, match="single-stream"):
        build_model("two_stream", 3, stream="two_stream", **SMALL)


def test_wrong_number_of_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="built for 4 frames"):
        build_model("tsm", 3, **SMALL)(torch.randn(1, 3, 6, 16, 16))


def test_tam_applies_its_clip_kernel_as_a_channelwise_temporal_conv():
    tam = TAM(4, t=5).eval()
    x = torch.randn(2 * 5, 4, 3, 3)
    out = tam(x).view(2, 5, 4, 3, 3)
    k = tam.last_kernel
    v = x.view(2, 5, 4, 3, 3)
    pooled = v.mean((3, 4)).transpose(1, 2)
    scaled = v * tam.local(pooled).transpose(1, 2)[..., None, None]
    for n in range(2):
        for c in range(4):
            seq = scaled[n, :, c].reshape(5, 9).t()[:, None]  # (pixels, 1, T)
            ref = torch.nn.functional.conv1d(seq, k[n, c].view(1, 1, 3), padding=1)[:, 0].t().reshape(5, 3, 3)
            assert torch.allclose(out[n, :, c], ref, atol=1e-6)


def test_backward_difference_is_the_previous_frame_minus_this_one():
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    x = torch.randn(2 * 4, 3, 5, 5)
    out = previous_minus_now(x, 4, conv).view(2, 4, 3, 5, 5)
    v, moved = x.view(2, 4, 3, 5, 5), conv(x).view(2, 4, 3, 5, 5)
    assert torch.all(out[:, 0] == 0)
    assert torch.allclose(out[:, 1:], moved[:, :-1] - v[:, 1:], atol=1e-6)


def test_temporal_taps_gradients_match_finite_differences():
    """The in-place multiply-adds on time slices must keep autograd exact (time-varying taps included)."""
    v = torch.randn(2, 4, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    taps = [torch.randn(2, 4, 3, 1, 1, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda v, *w: temporal_taps(v, list(w)), (v, *taps))


def test_tdn_short_term_module_encodes_half_resolution_differences_at_the_stem_size():
    """With a 4x stem, S-TDM pools the clip before differencing (TDN's order); pooling commutes with the
    differences, so this equals pooling the full-resolution differences."""
    from deepnotes.video.models.tdn import ShortTermTDM

    torch.manual_seed(0)
    stdm = ShortTermTDM(3, 8)
    nn.init.uniform_(stdm.encode[1].weight, 0.5, 1.5)
    stdm.eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    nxt = torch.cat([clip[:, :, 1:], clip[:, :, -1:]], 2) - clip
    prv = clip - torch.cat([clip[:, :, :1], clip[:, :, :-1]], 2)
    diffs = unfold(torch.cat([prv, nxt], 1))  # (N*T, 6, 32, 32) at full resolution
    with torch.no_grad():
        assert torch.allclose(stdm(clip, (8, 8)), stdm.encode(F.avg_pool2d(diffs, 2)), atol=1e-5)
        assert torch.allclose(stdm(clip, (16, 16)), stdm.encode(diffs), atol=1e-5)  # 2x stem: no pooling


def test_tdn_long_term_attention_is_x_plus_x_times_the_mean_of_both_directions():
    from deepnotes.video.models.ops import next_minus_now, previous_minus_now
    from deepnotes.video.models.tdn import LongTermTDM

    torch.manual_seed(0)
    ltdm = LongTermTDM(32, t=4)
    nn.init.uniform_(ltdm.expand[1].weight, 0.5, 1.5)
    ltdm.eval()
    x = torch.randn(2 * 4, 32, 6, 6)
    with torch.no_grad():
        out = ltdm(x)
        s = ltdm.squeeze(x)
        fwd = torch.sigmoid(ltdm.logits(next_minus_now(s, 4, ltdm.neighbour))) - 0.5  # direction by direction
        bwd = torch.sigmoid(ltdm.logits(previous_minus_now(s, 4, ltdm.neighbour))) - 0.5
    a = 0.5 * (fwd + bwd)
    torch.testing.assert_close(out, x + x * a, atol=1e-6, rtol=0)
    assert a.abs().max() < 0.5 and not torch.allclose(a, fwd)  # both directions count

def test_tea_mta_second_group_sees_only_its_own_channels():
    from deepnotes.video.models.tea import MultipleTemporalAggregation

    mta = MultipleTemporalAggregation(8, t=3, shift_passthrough=False)
    x = torch.zeros(2 * 3, 8, 4, 4)
    x[:, :2] = torch.randn(6, 2, 4, 4)  # only the pass-through group is non-zero
    with torch.no_grad():
        out = mta(x)
    assert torch.equal(out[:, :2], x[:, :2]) and torch.all(out[:, 2:] == 0)  # paper eq. 5: X2 alone
    x[:, 2:4] = torch.randn(6, 2, 4, 4)
    with torch.no_grad():
        out = mta(x)
    # identity init chain
    assert torch.allclose(out[:, 4:6], x[:, 2:4]) and torch.allclose(out[:, 6:8], x[:, 2:4])


def test_tea_passthrough_group_starts_as_a_bidirectional_shift():
    """TEA's released code: the group without convolutions goes through a temporal conv that starts as TSM's
    shift, half its channels from the next frame and half from the previous one, zeros past the ends."""
    from deepnotes.video.models.tea import MultipleTemporalAggregation

    t = 4
    mta = MultipleTemporalAggregation(16, t=t)  # 4 groups of 4 channels: the first is the pass-through
    x = torch.randn(2 * t, 16, 3, 3)
    with torch.no_grad():
        out = mta(x)
    v, o = x.view(2, t, 16, 3, 3), out.view(2, t, 16, 3, 3)
    ref = torch.zeros(2, t, 4, 3, 3)
    ref[:, :-1, :2] = v[:, 1:, :2]  # channels 0-1 read frame t+1
    ref[:, 1:, 2:4] = v[:, :-1, 2:4]  # channels 2-3 read frame t-1
    assert torch.equal(o[:, :, :4], ref)
    assert mta.shift.weight.requires_grad  # learnable, as TEA's ShiftModule
    still = MultipleTemporalAggregation(16, t=t, shift_passthrough=False)
    with torch.no_grad():
        assert torch.equal(still(x)[:, :4], x[:, :4])


@pytest.mark.parametrize(("excitation", "gain"), [("code", lambda z: torch.sigmoid(z) - 0.5),
                                                ("paper", lambda z: 2 * torch.sigmoid(z) - 1)])
def test_tea_motion_excitation_gains_channels_by_pooled_feature_differences(excitation, gain):
    """ME, frame by frame: s = squeeze(x); d_t = transform(s_{t+1}) - s_t (0 at the last frame); A =
    gain(expand(mean over pixels of d_t)); y = x + x * A. TEA's released code: sigmoid - 0.5; the paper:
    2 sigmoid - 1."""
    from deepnotes.video.models.tea import MotionExcitation

    t = 3
    me = MotionExcitation(32, t, excitation=excitation).eval()
    with torch.no_grad():  # BN statistics away from the identity, so a wrong order of operations shows
        for bn in (me.squeeze[1], me.expand[1]):
            bn.running_mean.normal_(0, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2 * t, 32, 5, 5)
    with torch.no_grad():
        s = me.squeeze(x).view(2, t, -1, 5, 5)
        moved = me.transform(s.flatten(0, 1)).view_as(s)
        d = torch.zeros_like(s)
        for i in range(t - 1):
            d[:, i] = moved[:, i + 1] - s[:, i]
        a = gain(me.expand(d.flatten(0, 1).mean((2, 3), keepdim=True)))
        torch.testing.assert_close(me(x), x + x * a)
    assert ((1 + a) > (0.5 if excitation == "code" else 0.0)).all()


def test_tea_checkpoints_stored_before_the_shift_load_into_the_network_that_wrote_them():
    from dataclasses import asdict

    from deepnotes.video.models.registry import build_from_config

    new = build_model("tea", 5, num_segments=4, depth=10, width=8)
    stored = asdict(new.cfg)
    assert stored["shift_passthrough"] is True and build_from_config(stored).cfg.shift_passthrough
    stored.pop("after_relu")  # written before the ReLU placement: the block's BN output
    between = build_from_config(stored).cfg
    assert between.after_relu is False and between.excitation == "code" and between.shift_passthrough
    stored.pop("excitation")  # written between the two fields: shift, the paper's excitation
    assert build_from_config(stored).cfg.excitation == "paper"
    stored.pop("shift_passthrough")  # a model_config written before either field existed
    old = build_from_config(stored)
    assert old.cfg.shift_passthrough is False and old.cfg.excitation == "paper"  # what they were built with
    assert new.cfg.excitation == "code"  # TEA's released code
    shifted = build_model("tea", 5, num_segments=4, depth=10, width=8, after_relu=False)  # same module keys
    extra = set(shifted.state_dict()) - set(old.state_dict())
    assert extra and all(k.endswith("shift.weight") for k in extra)
    old.load_state_dict(build_model("tea", 5, num_segments=4, depth=10, width=8, shift_passthrough=False,
                                    excitation="paper", after_relu=False).state_dict())  # strict: same keys


def test_flops_count_the_temporal_convs_written_as_products():
    # torch's counter sees only matmuls and convolutions: the depthwise temporal conv declares its own
    tc = TemporalConv(6, t=5)
    ref = nn.Conv3d(6, 6, (3, 1, 1), padding=(1, 0, 0), groups=6, bias=False)
    x = torch.randn(2 * 5, 6, 4, 4)
    assert count_flops(tc, x) == count_flops(ref, fold(x, 5)) > 0
    tam = TAM(8, t=4)
    y = torch.randn(3 * 4, 8, 5, 5)
    assert count_flops(tam, y) >= 2 * 3 * y.numel()


def test_inflated_batchnorm_keeps_the_2d_statistics():
    from deepnotes.video.models.inflate import to_3d

    net = nn.Sequential(nn.BatchNorm2d(4, eps=1e-3, momentum=0.3), nn.MaxPool2d(3, 2, 1, ceil_mode=True))
    net[0].running_mean.fill_(5.0)
    net[0].running_var.fill_(2.0)
    to_3d(net, lambda name, conv: conv)
    bn, pool = net[0], net[1]
    assert isinstance(bn, nn.BatchNorm3d) and bn.eps == 1e-3 and bn.momentum == 0.3
    assert torch.all(bn.running_mean == 5.0) and torch.all(bn.running_var == 2.0)
    assert pool.kernel_size == (1, 3, 3) and pool.ceil_mode


@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_equals_a_1x1_conv2d_in_values_gradients_flops_and_state_dict(bias):
    from deepnotes.video.models.ops import Pointwise

    torch.manual_seed(0)
    ref = nn.Conv2d(12, 3, 1, bias=bias)
    pw = Pointwise(12, 3, bias=bias)
    pw.load_state_dict(ref.state_dict())  # checkpoints written with nn.Conv2d load unchanged
    x = torch.randn(5, 12, 6, 7, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, expected = pw(x), ref(x_ref)
    assert torch.allclose(out, expected, atol=1e-5)
    g = torch.randn_like(out)
    out.backward(g)
    expected.backward(g)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(pw.weight.grad, ref.weight.grad, atol=1e-4)
    if bias:
        assert torch.allclose(pw.bias.grad, ref.bias.grad, atol=1e-4)
    cl = x.detach().contiguous(memory_format=torch.channels_last)
    assert torch.allclose(pw(cl), expected, atol=1e-5)  # any memory layout in
    assert count_flops(pw, x.detach()) == count_flops(ref, x.detach()) > 0


def _inputs_and_outputs_min(model: nn.Module, kind: type) -> list[tuple[float, float]]:
    """(min of input, min of output) of every ``kind`` module of ``model`` on one random batch of clips."""
    seen = []

    def record(module, args, out):
        seen.append((float(args[0].min()), float(out.min())))

    for m in model.modules():
        if isinstance(m, kind):
            m.register_forward_hook(record)
    model(torch.randn(2, 3, 4, 16, 16))
    return seen


@pytest.mark.parametrize("name", ["tam", "tdn", "tea"])
def test_modules_after_conv1_read_its_activations_after_the_relu(name):
    # TANet's, TDN's and TEA's released code apply their module to the block's first conv after BN and ReLU
    from deepnotes.video.models.tdn import LongTermTDM
    from deepnotes.video.models.tea import MotionExcitation

    kind = {"tam": TAM, "tdn": LongTermTDM, "tea": MotionExcitation}[name]
    torch.manual_seed(0)
    seen = _inputs_and_outputs_min(build_model(name, 5, num_segments=4, depth=10, width=8), kind)
    assert len(seen) == 4  # one per block of the ResNet-10
    # non-negative in, non-negative out (TAM's and TDN's whole module, TEA's ME; the block's ReLU after
    # TAM and TDN is then a no-op)
    assert all(inp >= 0 and out >= 0 for inp, out in seen)
    old = build_model(name, 5, num_segments=4, depth=10, width=8, after_relu=False)
    assert min(inp for inp, _ in _inputs_and_outputs_min(old, kind)) < 0  # the BN output, signed


def test_tam_block_is_relu_of_the_first_conv_then_tam_then_the_rest():
    torch.manual_seed(0)
    block = build_model("tam", 5, num_segments=4, depth=10, width=8).backbone.stages[0][0]
    conv_bn, _, tam = block.conv1
    x = torch.randn(8, conv_bn[0].in_channels, 6, 6)
    ref = block.relu(block.conv2(tam(torch.relu(conv_bn(x)))) + block.downsample(x))
    assert torch.allclose(ref, block(x), atol=1e-6)


@pytest.mark.parametrize("name", ["tam", "tdn"])
def test_checkpoints_stored_before_the_relu_placement_rebuild_as_they_were(name):
    from dataclasses import asdict

    from deepnotes.video.models.registry import build_from_config

    new = build_model(name, 5, num_segments=4, depth=10, width=8)
    stored = asdict(new.cfg)
    assert stored["after_relu"] is True and build_from_config(stored).cfg.after_relu
    stored.pop("after_relu")  # a model_config written before the field existed
    old = build_from_config(stored)
    assert old.cfg.after_relu is False
    assert not any(isinstance(m, nn.ReLU) for m in old.backbone.stages[0][0].conv1)
    old.load_state_dict(build_model(name, 5, num_segments=4, depth=10, width=8,
                                    after_relu=False).state_dict())  # strict: same keys
