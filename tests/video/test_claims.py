"""The video claims' measuring helpers measure what their labels say (the claims themselves run in
`deepnotes reproduce`)."""

from pathlib import Path

import numpy as np
import torch

from deepnotes.core.claims import registered_claims
from deepnotes.video.claims import kernels, motion_cost, recognition
from deepnotes.video.experiments import FULL, Setup
from deepnotes.video.models import MODELS, MODELS_3D
from deepnotes.video.models.tam import TAM
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
        "video.order_needs_temporal_modeling", "video.cost_2d_vs_3d", "video.3d_kernels_smooth",
        "video.flow_vs_feature_motion", "video.two_stream_fusion", "video.untrimmed_localisation"]


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
