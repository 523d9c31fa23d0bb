"""The video claims' measuring helpers measure what their labels say (the claims themselves run in
`deepnotes reproduce`)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.claims import ClaimContext, registered_claims
from deepnotes.core.timing import count_flops
from deepnotes.core.verdict import evidence
from deepnotes.video.claims import (
    consensus,
    families,
    feature_motion,
    kernels,
    motion_cost,
    protocol,
    recognition,
)
from deepnotes.video.config import TrainConfig
from deepnotes.video.experiments import FULL, QUICK, Setup, reference
from deepnotes.video.models import MODELS, MODELS_3D, build_from_config, build_model
from deepnotes.video.models.tam import TAM
from deepnotes.video.training import model_options
from deepnotes.video.two_stream.flow import compute_flow, write_flow


def test_flow_costs_count_the_files_the_extractor_stores(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    costs = motion_cost._flow_costs(frames, repeat=1)
    for method in ("farneback", "dis"):
        out = tmp_path / method
        write_flow(out, compute_flow(frames, method))  # what `deepnotes video flow` writes for these frames
        files = list(out.iterdir())
        jpeg = sum(f.stat().st_size for f in files if f.suffix == ".jpg") / 3
        npz = sum(f.stat().st_size for f in files if f.suffix == ".npz") / 3
        assert costs[method]["jpeg_bytes_per_frame"] == jpeg and costs[method]["npz_bytes_per_frame"] == npz
        assert costs[method]["float32_bytes_per_frame"] == 48 * 64 * 2 * 4
        assert costs[method]["ms_per_frame"] > 0


class _Flat(torch.nn.Module):
    """(clips, C, T, H, W) -> the (clips*T, C, H, W) frames a TAM layer takes."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        n, c, t, h, w = x.shape
        return self.inner(x.transpose(1, 2).reshape(n * t, c, h, w))


def test_tam_kernels_are_kept_per_layer_with_clips_first(monkeypatch):
    # identical clips give identical kernels: the across-clip spread must then be zero, whatever the layers
    class TwoTams(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = TAM(8, t=4), TAM(16, t=4)
            self.widen = torch.nn.Conv2d(8, 16, 1)

        def forward(self, x):
            return self.b(self.widen(self.a(x)))

    class Loader:
        def __iter__(self):
            # 3 identical clips (N, V, C, T, H, W)
            clip = torch.randn(1, 1, 8, 4, 5, 5).expand(3, -1, -1, -1, -1, -1)
            yield type("Batch", (), {"clips": clip.contiguous()})()

    torch.manual_seed(0)
    model = TwoTams().eval()
    monkeypatch.setattr(kernels, "make_loader", lambda *a, **k: Loader())
    monkeypatch.setattr(kernels, "make_dataset", lambda *a, **k: None)
    monkeypatch.setattr(kernels, "read_list", lambda *a, **k: [])
    per_layer = kernels._tam_kernels(_Flat(model), {"train": Path("x"), "val": Path("y")}, FULL)
    assert [k.shape for k in per_layer] == [(3, 8, 3), (3, 16, 3)]
    assert kernels._across_clip_variation(per_layer) < 1e-5
    varied = [k + torch.randn_like(k) * 0.1 for k in per_layer]
    assert kernels._across_clip_variation(varied) > 0.05


def test_the_package_registers_every_video_claim_in_report_order():
    assert [c.id for c in registered_claims(["video"])] == [
        "video.order_needs_temporal_modeling", "video.cost_2d_vs_3d", "video.3d_scene_vs_order",
        "video.tsn_max_vs_avg_consensus", "video.cost_at_published_protocol", "video.3d_kernels_smooth",
        "video.flow_vs_feature_motion", "video.feature_vs_frame_motion_accuracy", "video.two_stream_fusion",
        "video.untrimmed_localisation"]


def test_claim_model_lists_come_from_the_registry():
    """TSN, then every temporal 2D model, then the trained 3D models; variants (i3d_full) only costed, and
    a temporal module is timed against flow whatever its name."""
    assert recognition.ALL == ("tsn", *MODELS.names(family="2d", temporal=True),
                               *MODELS.names(family="3d", variant=False))
    assert "i3d_full" not in recognition.ALL and "i3d_full" in recognition.VARIANTS_3D
    assert kernels.MODELS_3D == MODELS_3D and {"tsm", "tam", "i3d"} <= set(recognition.ALL)
    assert set(motion_cost.MODULES) == set(MODELS.names(family="2d", temporal=True))


def test_order_blindness_is_zero_for_tsn_and_not_for_a_temporal_model(monkeypatch):
    """The exact part of the order claim: average consensus cannot see a reversed clip, a shift can (once
    the residual branches are live: at initialisation their last BatchNorm is zero, so every model starts
    order-blind)."""
    build = recognition.model_for

    def live(name, setup):
        model = build(name, setup)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                torch.nn.init.ones_(m.weight)
        return model

    monkeypatch.setattr(recognition, "model_for", live)
    setup = Setup(size=16, segments=4, depth=10, width=8)
    assert recognition.order_blindness(setup) < 1e-5
    assert recognition.order_blindness(setup, "tsm") > 1e-3


# the claims of #22 item 5 -------------------------------------------------------------------------------

NEW = {"video.3d_scene_vs_order": ("note", "3d", ("scene_3d_minus_2d", "order_3d_minus_2d")),
       "video.tsn_max_vs_avg_consensus": ("paper", "motion", ("avg_minus_max",)),
       "video.cost_at_published_protocol": ("note", "3d", ("flops_protocol", "latency_protocol")),
       "video.feature_vs_frame_motion_accuracy": ("note", "motion", ("feature_minus_flow",))}


@pytest.mark.parametrize("claim_id", list(NEW))
def test_new_claims_state_origin_note_paper_and_deciding_tests(claim_id):
    """Each names its note, quotes a sentence of it (a `paper` claim the one it extends), cites a paper,
    and decides on the tests the brief asks for; bounds are the note's sides (> 0, < 0, > 1.5)."""
    c = {c.id: c for c in registered_claims(["video"])}[claim_id]
    origin, note, deciding = NEW[claim_id]
    assert (c.origin, c.source.note_key) == (origin, note) and c.source.note and c.source.translation
    assert c.paper is not None and c.paper.ref and c.paper.figure
    assert tuple(t.name for t in c.tests if t.decides) == deciding
    bounds = {t.name: (t.side, t.bound) for t in c.tests}
    if claim_id == "video.3d_scene_vs_order":
        assert bounds == {"scene_3d_minus_2d": (">", 0.0), "order_3d_minus_2d": ("<", 0.0)}
    if claim_id == "video.cost_at_published_protocol":
        assert bounds["flops_protocol"] == (">", 1.5) and bounds["latency_protocol"] == (">", 1.5)


def _ctx(tmp_path, claim_id):
    c = {c.id: c for c in registered_claims(["video"])}[claim_id]
    return c, ClaimContext(quick=True, seed=0, device=torch.device("cpu"), out_dir=tmp_path,
                           claim_id=claim_id, tests=c.tests)


def _judged(c, outcome):
    """Each test's verdict from the claim's outcome (every test has its samples)."""
    assert set(outcome.samples) == {t.name for t in c.tests}
    return {t.name: evidence(t, outcome.samples[t.name], outcome.floor.get(t.name, "")).verdict
            for t in c.tests}


def test_consensus_max_is_amax_over_segment_logits_and_avg_is_unchanged():
    """TSN's max consensus is torch's amax over the per-segment logits; the default (avg) is their mean,
    what TSN computed before the option existed (so existing runs and configs give the same output)."""
    torch.manual_seed(0)
    x = torch.randn(3, 3, 4, 16, 16)
    shape = dict(num_segments=4, depth=10, width=8, stem_stride=1, dropout=0.0)
    mx = build_model("tsn", 5, consensus="max", **shape).eval()
    avg = build_model("tsn", 5, **shape).eval()
    avg.load_state_dict(mx.state_dict())
    with torch.no_grad():
        per_segment = mx.fc(mx.features(x))  # (N, T, K)
        assert per_segment.shape == (3, 4, 5)
        torch.testing.assert_close(mx(x), torch.amax(per_segment, dim=1), rtol=0, atol=0)
        torch.testing.assert_close(avg(x), per_segment.mean(1), rtol=0, atol=0)
        assert not torch.allclose(mx(x), avg(x))
    assert avg.cfg.consensus == "avg" and TrainConfig(model="tsn", train="t", out="o").consensus == "avg"
    # a checkpoint's meta written before the option (no consensus key) still rebuilds, with avg
    old = {k: v for k, v in vars(avg.cfg).items() if k != "consensus"}
    assert build_from_config(old).consensus == "avg"
    with pytest.raises(ValueError, match="consensus"):
        build_model("tsn", 5, consensus="median", **shape)
    cfg = TrainConfig(model="tsn", train="t", out="o", consensus="max")
    assert model_options(cfg)["consensus"] == "max"
    assert "consensus" not in model_options(TrainConfig(model="tsm", train="t", out="o"))


def test_max_consensus_is_blind_to_order():
    assert consensus.max_order_blindness(Setup(size=16, segments=4, depth=10, width=8)) < 1e-5


def test_consensus_claim_pairs_avg_and_max_by_seed(tmp_path, monkeypatch):
    calls = []

    def fake(ctx, kind, model, seed, tag="", **changes):
        calls.append((kind, model, seed, tag, changes))
        return 0.9 if not changes else 0.7

    monkeypatch.setattr(consensus, "top1_with", fake)
    c, ctx = _ctx(tmp_path, "video.tsn_max_vs_avg_consensus")
    out = c.fn(ctx)
    assert out.samples["avg_minus_max"] == pytest.approx([0.2])
    assert calls == [("scene", "tsn", 0, "", {}), ("scene", "tsn", 0, "max", {"consensus": "max"})]
    assert _judged(c, out) == {"avg_minus_max": "inconclusive", "max_order_blind": "held"}  # n = 1


def test_families_claim_takes_family_means_from_the_cached_runs(tmp_path, monkeypatch):
    top = {"scene": {"i3d": 1.0, "tsm": 0.75}, "motion": {m: 0.9 if m in MODELS_3D else 1.0
                                                           for m in (*MODELS_3D, *recognition.TEMPORAL_2D)}}
    monkeypatch.setattr(families, "top1", lambda ctx, kind, m: top[kind][m])
    c, ctx = _ctx(tmp_path, "video.3d_scene_vs_order")
    out = c.fn(ctx)
    assert out.samples["scene_3d_minus_2d"] == pytest.approx([0.25])  # quick: I3D against TSM on scene
    assert out.samples["order_3d_minus_2d"] == pytest.approx([-0.1])
    assert set(_judged(c, out).values()) == {"inconclusive"}  # one training each


def test_feature_motion_claim_compares_the_weaker_feature_model_with_the_flow_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_motion, "top1_with", lambda ctx, kind, m, s: {"tea": 0.8, "stm": 0.6}[m])
    monkeypatch.setattr(feature_motion, "flow_stream",
                        lambda ctx, s: ({"top1": 0.9, "rgb_top1": 0.5, "flow_top1": 0.7}, 1.5))
    c, ctx = _ctx(tmp_path, "video.feature_vs_frame_motion_accuracy")
    out = c.fn(ctx)
    assert out.samples["feature_minus_flow"] == pytest.approx([-0.1])
    assert out.samples["feature_minus_two_stream"] == pytest.approx([-0.3])


def test_flow_arm_costs_count_a_tsn_on_flow_channels():
    setup = Setup(size=16, segments=4, depth=10, width=8)
    cost = feature_motion.arm_costs(setup)
    assert cost["tea"] > cost["tsn"] and cost["stm"] > cost["tsn"]
    assert cost["flow_stream_net"] > cost["tsn"]  # 2L = 4 input channels instead of 3: a larger first conv


def test_protocol_i3d_matches_mmaction2_shape_and_counts_on_meta_as_on_cpu():
    """mmaction2's I3D-R50: 28.0M parameters (the zoo's figure, 400 classes) and a 32-frame clip 4 frames
    deep after the first stage (temporal strides 2, 2 and the 2x1x1 pool2); FLOPs counted on the meta device
    equal those counted on real tensors."""
    with torch.device("meta"):
        big = protocol.i3d_protocol()
    assert round(sum(p.numel() for p in big.parameters()) / 1e6, 1) == 28.0
    small = protocol.i3d_protocol(frames=32, width=8, size=32, num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        feats = small.backbone.stages[0](small.backbone.stem(x))
    assert feats.shape[2] == 4 and small(x).shape == (1, 5)
    flops, params = protocol.protocol_flops(frames_3d=8, frames_2d=2, width=8, size=32)
    real = protocol._pair(8, 2, 8, 32)
    assert flops == {n: count_flops(m, x[:1]) for n, (m, x) in real.items()}
    assert flops["i3d_ours_long"] > flops["i3d_ours_equal"] and params["tsm"] > 0


def test_protocol_latency_gives_one_time_per_round_and_model():
    lat = protocol.protocol_latency(8, 2, 8, 32, rounds=2)
    assert set(lat) == {"i3d_protocol", "tsm"}  # the pair the claim decides on
    assert set(protocol.protocol_latency(8, 2, 8, 32, 1, names=("tsm", "i3d_ours_equal"))) == {
        "tsm", "i3d_ours_equal"}
    assert all(len(v) == 2 and min(v) > 0 for v in lat.values())


def test_motion_cost_rounds_time_modules_per_batch_size():
    """The flow claim's rounds: per video one time per flow method, and per batch size one per module
    (the deciding batch first); per-frame times are positive."""
    setup = reference(QUICK, size=32, segments=4, depth=10, width=8, stem_stride=1)
    videos = [motion_cost._frames(s, setup) for s in range(2)]
    flow, mods = motion_cost._round_times(videos, setup)
    assert set(flow) == {"farneback", "dis"} and all(len(v) == 2 for v in flow.values())
    assert list(mods) == list(motion_cost.BATCHES) and motion_cost.BATCHES[-1] == 1
    assert all(len(v) == 2 and min(v) > 0 for ms in mods.values() for v in ms.values())


def test_train_run_takes_the_setups_residual_init_not_the_cli_default(tmp_path, monkeypatch):
    """The claims that train through `video train` (two-stream, untrimmed) keep their setup's init (gamma 0
    quick, gamma 1 full) when `video train`'s default changes; an explicit value still wins."""
    from deepnotes.video.claims import common

    seen = []
    monkeypatch.setattr(common, "train", lambda cfg: seen.append(cfg.resolved_zero_init_residual()) or [])
    for quick, expected in ((True, common.QUICK.zero_init_residual), (False, common.FULL.zero_init_residual)):
        ctx = ClaimContext(quick=quick, seed=0, device=torch.device("cpu"), out_dir=tmp_path)
        common.train_run(ctx, "tsm", "t.txt", None, tmp_path / "run")
        assert seen[-1] is expected
    common.train_run(ctx, "tsm", "t.txt", None, tmp_path / "run", zero_init_residual=True)
    assert seen == [True, False, True]
