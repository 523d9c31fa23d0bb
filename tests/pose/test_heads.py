import math

import numpy as np
import pytest
import torch
from scipy import stats

from deepnotes.pose.heads import denormalise, normalise
from deepnotes.pose.heads.heatmap import (
    HeatmapHead,
    crop_to_heatmap,
    decode_argmax,
    decode_soft_argmax,
    gaussian_targets,
    heatmap_to_crop,
)
from deepnotes.pose.heads.regression import RegressionHead
from deepnotes.pose.heads.rle import RLEHead, base_nll


def test_coordinate_maps_round_trip():
    xy = torch.rand(3, 17, 2) * 40
    assert torch.allclose(denormalise(normalise(xy, (64, 48)), (64, 48)), xy, atol=1e-5)
    back = heatmap_to_crop(crop_to_heatmap(xy, (64, 48), (16, 12)), (64, 48), (16, 12))
    assert torch.allclose(back, xy, atol=1e-5)
    # crop edges map to +-0.5 and heatmap pixel 0 covers crop pixels 0..3 (centre 1.5)
    assert torch.allclose(normalise(torch.tensor([[-0.5, 63.5]]), (64, 48)), torch.tensor([[-0.5, 0.5]]))
    assert torch.allclose(heatmap_to_crop(torch.zeros(1, 2), (64, 48), (16, 12)), torch.full((1, 2), 1.5))


def test_gaussian_targets_match_direct_formula():
    pts = torch.tensor([[[3.3, 5.7], [0.0, 10.2]]])
    t = gaussian_targets(pts, (16, 12), sigma=1.5)
    for k in range(2):
        for y in (0, 5, 15):
            for x in (0, 3, 11):
                want = math.exp(-((x - pts[0, k, 0]) ** 2 + (y - pts[0, k, 1]) ** 2) / (2 * 1.5**2))
                assert t[0, k, y, x].item() == pytest.approx(want, rel=1e-5)


def test_argmax_decoding_and_quarter_shift():
    hm = gaussian_targets(torch.tensor([[[4.0, 7.0], [4.3, 7.0], [5.7, 6.6]]]), (16, 12), 1.0)
    plain, peak = decode_argmax(hm, quarter_shift=False)
    shifted, _ = decode_argmax(hm)
    assert torch.equal(plain[0], torch.tensor([[4.0, 7.0], [4.0, 7.0], [6.0, 7.0]]))
    assert peak[0, 0].item() == pytest.approx(1.0)
    # exact centre: symmetric neighbours, no shift; otherwise a quarter pixel toward the true point
    assert torch.allclose(shifted[0], torch.tensor([[4.0, 7.0], [4.25, 7.0], [5.75, 6.75]]))


def test_border_peak_is_not_shifted_off_the_map():
    hm = torch.zeros(1, 2, 4, 5)
    hm[0, 0, 3, 0], hm[0, 0, 3, 1], hm[0, 0, 2, 0] = 1.0, 0.5, 0.4  # corner peak, inner neighbours lower
    hm[0, 1, 0, 2], hm[0, 1, 0, 3], hm[0, 1, 1, 2] = 1.0, 0.6, 0.3  # top-edge peak: shifts in x only
    shifted, _ = decode_argmax(hm)
    assert torch.allclose(shifted[0], torch.tensor([[0.0, 3.0], [2.25, 0.0]]))


def test_argmax_quantisation_floor_grows_with_stride_and_soft_argmax_removes_it():
    rng = np.random.default_rng(0)
    xy = torch.from_numpy(rng.uniform(8, 40, (1, 200, 2))).float()
    xy[..., 1] += 8  # keep rows away from the border so the soft-argmax window is never cut
    errs = {}
    for hw in ((64, 48), (16, 12), (8, 6)):
        hm_xy = crop_to_heatmap(xy, (64, 48), hw)
        hm = gaussian_targets(hm_xy, hw, sigma=1.0)
        for name, dec in (("argmax", lambda h: decode_argmax(h, False)[0]),
                          ("quarter", lambda h: decode_argmax(h)[0]),
                          ("soft", lambda h: decode_soft_argmax(h, radius=3)[0])):
            errs[name, hw] = (heatmap_to_crop(dec(hm), (64, 48), hw) - xy).norm(dim=-1).mean().item()
    stride8 = 64 / 8
    # uniform sub-pixel offsets: mean error of plain argmax is about 0.38 heatmap pixels
    assert errs["argmax", (8, 6)] == pytest.approx(0.383 * stride8, rel=0.15)
    assert errs["argmax", (64, 48)] < errs["argmax", (16, 12)] < errs["argmax", (8, 6)]
    assert errs["quarter", (8, 6)] < 0.8 * errs["argmax", (8, 6)]
    assert errs["soft", (16, 12)] < 0.05 and errs["soft", (64, 48)] < 0.05


def test_heatmap_head_shapes_loss_and_size_check():
    head = HeatmapHead(32, (4, 3), (64, 48), (16, 12), channels=8)
    out = head(torch.randn(2, 32, 4, 3))
    assert out["heatmaps"].shape == (2, 17, 16, 12)
    kp, w = torch.rand(2, 17, 2) * 40, (torch.rand(2, 17) > 0.3).float()
    target = gaussian_targets(crop_to_heatmap(kp, (64, 48), (16, 12)), (16, 12), head.sigma)
    per = ((out["heatmaps"] - target) ** 2).mean(dim=(2, 3))
    assert head.loss(out, kp, w)["loss"].item() == pytest.approx(((per * w).sum() / w.sum()).item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"feature map \(4x3\) times a power of two"):
        HeatmapHead(32, (4, 3), (64, 48), (20, 15))


def test_regression_l1_matches_direct_computation():
    head = RegressionHead(16, (4, 3), (64, 48))
    out = head(torch.randn(3, 16, 4, 3))
    kp, w = torch.rand(3, 17, 2) * 40, (torch.rand(3, 17) > 0.5).float()
    y = (kp + 0.5) / torch.tensor([48.0, 64.0]) - 0.5
    want = ((out["coords"] - y).abs().sum(-1) * w).sum() / w.sum()
    assert head.loss(out, kp, w)["l1"].item() == pytest.approx(want.item(), rel=1e-5)
    coords, scores = head.decode(out)
    assert coords.shape == (3, 17, 2) and torch.equal(scores, torch.ones(3, 17))


@pytest.mark.parametrize("base", ["laplace", "gaussian"])
def test_rle_loss_terms_match_direct_computation(base):
    torch.manual_seed(0)
    head = RLEHead(16, (4, 3), (64, 48), base=base)
    with torch.no_grad():  # a flow far from the identity, so its term is not trivially Gaussian
        for p in head.flow.parameters():
            p.normal_(0, 0.3)
    out = head(torch.randn(4, 16, 4, 3))
    kp, w = torch.rand(4, 17, 2) * 40, (torch.rand(4, 17) > 0.3).float()
    terms = head.loss(out, kp, w)
    mu, sigma = out["mu"].detach().double().numpy(), out["sigma"].detach().double().numpy()
    y = normalise(kp, (64, 48)).double().numpy()
    r = (mu - y) / sigma
    wn = w.double().numpy()
    avg = lambda a: (a * wn).sum() / wn.sum()  # noqa: E731
    assert terms["log_sigma"].item() == pytest.approx(avg(np.log(sigma).sum(-1)), rel=1e-4)
    dist = stats.laplace if base == "laplace" else stats.norm
    assert terms["base"].item() == pytest.approx(avg(-dist.logpdf(r).sum(-1)), rel=1e-4)
    flow_lp = head.flow.log_prob(torch.from_numpy(r.reshape(-1, 2)).float()).detach().double().numpy()
    flow_lp = flow_lp.reshape(4, 17)
    assert terms["flow"].item() == pytest.approx(avg(-flow_lp), rel=1e-4)
    total = terms["log_sigma"].item() + terms["flow"].item() + terms["base"].item()
    assert terms["loss"].item() == pytest.approx(total)
    assert base_nll(torch.zeros(1, 2), base).item() == pytest.approx(
        2 * (math.log(2) if base == "laplace" else 0.5 * math.log(2 * math.pi)))


def test_rle_inference_ignores_the_flow_and_scores_by_sigma():
    head = RLEHead(16, (4, 3), (64, 48))
    feats = torch.randn(2, 16, 4, 3)
    out = head(feats)
    coords, scores = head.decode(out)
    assert torch.allclose(scores, 1 - out["sigma"].mean(-1))
    assert ((out["sigma"] > 0) & (out["sigma"] < 1)).all()
    head.strip_flow()
    assert torch.equal(head.decode(head(feats))[0], coords)
    with pytest.raises(RuntimeError, match="stripped"):
        head.loss(head(feats), torch.zeros(2, 17, 2), torch.ones(2, 17))


def test_rle_gradient_of_sigma_pulls_toward_the_residual_size():
    """With the flow at identity-like init and a Gaussian base, d loss / d sigma has the sign of
    sigma^2 - E[r^2]-ish: too small a sigma for the error gets pushed up, too large pushed down."""
    head = RLEHead(4, (4, 3), (64, 48), base="gaussian", num_joints=1)
    y = torch.zeros(1, 1, 2)
    for s0, sign in ((0.01, -1), (0.45, 1)):
        sigma = torch.full((1, 1, 2), s0, requires_grad=True)
        mu = torch.full((1, 1, 2), 0.1)
        loss = head.loss_terms(mu, sigma, y)
        (loss["log_sigma"] + loss["flow"] + loss["base"]).sum().backward()
        assert torch.sign(sigma.grad).eq(sign).all()
