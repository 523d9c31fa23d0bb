import numpy as np
import torch

from deepnotes.video.data.transforms import (
    CenterCrop,
    HorizontalFlip,
    MultiScaleCrop,
    Normalize,
    RandomResizedCrop,
    ThreeCrop,
    eval_transform,
    resize,
    train_transform,
)

RNG = np.random.default_rng(0)


def _clip(t=4, h=20, w=30):
    return torch.arange(t * 3 * h * w, dtype=torch.float32).view(t, 3, h, w)


def test_flip_maps_label_and_mirrors():
    clip = _clip()
    flip = HorizontalFlip(p=1.0, label_map={0: 1, 1: 0})
    out, label = flip(clip, 0, RNG)
    assert label == 1 and torch.equal(out, clip.flip(-1))
    assert flip(clip, 5, RNG)[1] == 5  # unmapped labels keep their name
    out, label = HorizontalFlip(p=0.0, label_map={0: 1})(clip, 0, RNG)
    assert label == 0 and torch.equal(out, clip)


def test_flip_negates_flow_x():
    clip = torch.randn(2, 2, 4, 4)
    out, _ = HorizontalFlip(1.0, negate_channels=[0])(clip, 0, RNG)
    assert torch.allclose(out[:, 0], -clip[:, 0].flip(-1)) and torch.allclose(out[:, 1], clip[:, 1].flip(-1))


def test_crops_are_the_same_for_every_frame():
    clip = _clip()
    out, _ = CenterCrop(10)(clip, 0, RNG)
    assert torch.equal(out, clip[..., 5:15, 10:20])
    three, _ = ThreeCrop(20)(clip, 0, RNG)
    assert three.shape == (3, 4, 3, 20, 20)
    assert torch.equal(three[0], clip[..., :20]) and torch.equal(three[2], clip[..., 10:])
    for t in (MultiScaleCrop(16), RandomResizedCrop(16)):
        out, _ = t(clip, 0, np.random.default_rng(1))
        assert out.shape == (4, 3, 16, 16)


def test_multiscale_crop_draws_only_the_given_scales(monkeypatch):
    from deepnotes.video.data import transforms

    monkeypatch.setattr(transforms, "resize", lambda clip, size: clip)  # keep the box's own size
    clip = _clip(h=100, w=100)
    rng = np.random.default_rng(0)
    for scales in (transforms.RGB_SCALES, transforms.MOTION_SCALES):
        boxes = {tuple(MultiScaleCrop(64, scales)(clip, 0, rng)[0].shape[-2:]) for _ in range(300)}
        sides = {int(100 * s) for s in scales}
        assert {h for h, _ in boxes} == sides and {w for _, w in boxes} == sides
        assert all(abs(sorted(sides).index(h) - sorted(sides).index(w)) <= 1 for h, w in boxes)  # max_distort
    assert 66 not in {h for h, _ in boxes}  # the motion scales never take the 0.66 corner crop
    # train_transform's multiscale crop takes its scales from the caller (TrainConfig.crop_scales)
    full = train_transform(20, "multiscale", flip=False, scales=(1,), mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.equal(full(clip, 0, rng)[0], clip)  # scale 1 only: the whole frame, every time


def test_resize_short_side_matches_interpolate():
    clip = torch.rand(2, 3, 20, 40)
    out = resize(clip, 10)
    assert out.shape == (2, 3, 10, 20)
    ref = torch.nn.functional.interpolate(clip, size=(10, 20), mode="bilinear", antialias=True)
    assert torch.allclose(out, ref)


def test_normalize_and_pipelines():
    clip = torch.rand(4, 3, 24, 32)
    out, _ = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(clip, 0, RNG)
    assert torch.allclose(out, (clip - 0.5) / 0.25)
    assert train_transform(16)(clip, 0, RNG)[0].shape == (4, 3, 16, 16)
    assert eval_transform(16, crops=3)(clip, 0, RNG)[0].shape == (3, 4, 3, 16, 16)
    assert eval_transform(16, crops=1)(clip, 0, RNG)[0].shape == (1, 4, 3, 16, 16)
