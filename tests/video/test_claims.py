"""The video claims' measuring helpers measure what their labels say (the claims themselves run in
`deepnotes reproduce`)."""

from pathlib import Path

import numpy as np
import torch

from deepnotes.video import claims
from deepnotes.video.flow import compute_flow, write_flow
from deepnotes.video.models.tam import TAM


def test_flow_costs_count_the_files_the_extractor_stores(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    costs = claims._flow_costs(frames, repeat=1)
    for method in ("farneback", "dis"):
        out = tmp_path / method
        write_flow(out, compute_flow(frames, method))  # what `deepnotes video flow` writes for these frames
        files = list(out.iterdir())
        jpeg = sum(f.stat().st_size for f in files if f.suffix == ".jpg") / 3
        npz = sum(f.stat().st_size for f in files if f.suffix == ".npz") / 3
        assert costs[method]["jpeg_bytes_per_frame"] == jpeg and costs[method]["npz_bytes_per_frame"] == npz
        assert costs[method]["float32_bytes_per_frame"] == 48 * 64 * 2 * 4 and costs[method]["ms_per_frame"] > 0


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
            clip = torch.randn(1, 1, 8, 4, 5, 5).expand(3, -1, -1, -1, -1, -1)  # 3 identical (N, V, C, T, H, W)
            yield type("Batch", (), {"clips": clip.contiguous()})()

    torch.manual_seed(0)
    model = TwoTams().eval()
    monkeypatch.setattr("deepnotes.video.data.make_loader", lambda *a, **k: Loader())
    monkeypatch.setattr("deepnotes.video.training.make_dataset", lambda *a, **k: None)
    monkeypatch.setattr("deepnotes.video.data.read_list", lambda *a, **k: [])
    per_layer = claims._tam_kernels(_Flat(model), {"train": Path("x"), "val": Path("y")}, claims.FULL)
    assert [k.shape for k in per_layer] == [(3, 8, 3), (3, 16, 3)]
    assert claims._across_clip_variation(per_layer) < 1e-5
    varied = [k + torch.randn_like(k) * 0.1 for k in per_layer]
    assert claims._across_clip_variation(varied) > 0.05
