import pytest
import torch
import torch.nn.functional as F

from deepnotes.nn.upsampling import (
    KINDS,
    MaxPool,
    Upsample,
    max_unpool2d,
    pixel_shuffle,
    pixel_unshuffle,
    stride_frequency_energy,
    transposed_padding,
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_kind_scales_shape_and_trains(kind, scale):
    up = Upsample(kind, 3, 5, scale)
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    indices = None
    if kind == "maxunpool":
        big = torch.randn(2, 3, 6 * scale, 7 * scale)
        x, indices = MaxPool(scale)(big)
        x.requires_grad_()
    y = up(x, indices=indices) if indices is not None else up(x)
    assert y.shape == (2, 5, 6 * scale, 7 * scale)
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in up.parameters())


@pytest.mark.parametrize("scale", [2, 3])
def test_pixel_shuffle_matches_torch_and_unshuffle_inverts(scale):
    x = torch.randn(2, 4 * scale * scale, 5, 6)
    torch.testing.assert_close(pixel_shuffle(x, scale), torch.nn.PixelShuffle(scale)(x), rtol=0, atol=0)
    y = torch.randn(2, 3, 5 * scale, 6 * scale)
    torch.testing.assert_close(pixel_unshuffle(y, scale), torch.nn.PixelUnshuffle(scale)(y), rtol=0, atol=0)
    torch.testing.assert_close(pixel_shuffle(pixel_unshuffle(y, scale), scale), y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="divisible"):
        pixel_shuffle(torch.randn(1, 5, 2, 2), 2)


@pytest.mark.parametrize("scale", [2, 4])
def test_icnr_pixelshuffle_is_nearest_upsampling_of_a_conv_at_init(scale):
    torch.manual_seed(0)
    up = Upsample("pixelshuffle", 4, 3, scale)
    x = torch.randn(2, 4, 8, 8)
    y = up(x)
    r2 = scale * scale
    base = F.conv2d(x, up.conv.weight[::r2], up.conv.bias[::r2], padding=1)  # one kernel per output channel
    expected = F.interpolate(base, scale_factor=scale, mode="nearest")
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
    assert stride_frequency_energy(up(torch.ones(1, 4, 16, 16)), scale, border=scale).max() < 1e-12


@pytest.mark.parametrize("scale", [2, 3])
def test_unpool_matches_torch_max_unpool_including_odd_sizes(scale):
    x = torch.randn(2, 3, 7 * scale + 1, 5 * scale)
    pooled, idx = MaxPool(scale)(x)
    size = tuple(x.shape[-2:])
    ours = max_unpool2d(pooled, idx, size)
    torch.testing.assert_close(ours, torch.nn.MaxUnpool2d(scale)(pooled, idx, output_size=x.shape), rtol=0,
                               atol=0)
    up = Upsample("maxunpool", 3, 3, scale, kernel_size=1)
    with torch.no_grad():
        up.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        up.conv.bias.zero_()
    torch.testing.assert_close(up(pooled, indices=idx, output_size=size), ours)


def test_interpolation_kinds_are_resize_then_conv():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 5)
    for kind in ("nearest", "bilinear", "bicubic"):
        up = Upsample(kind, 2, 4, 2)
        align = None if kind == "nearest" else False
        expected = up.conv(F.interpolate(x, scale_factor=2, mode=kind, align_corners=align))
        torch.testing.assert_close(up(x), expected)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (4, 2), (1, 2), (3, 4), (5, 4), (8, 4)])
def test_transposed_padding_gives_exact_scale(k, s):
    p, op = transposed_padding(k, s)
    assert 0 <= op < s
    conv = torch.nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
    assert conv(torch.zeros(1, 1, 5, 6)).shape[-2:] == (5 * s, 6 * s)


def test_transposed_at_scale_one_keeps_the_size_or_refuses_an_even_kernel():
    assert Upsample("transposed", 2, 3, 1)(torch.zeros(1, 2, 5, 6)).shape == (1, 3, 5, 6)  # default kernel 3
    with pytest.raises(ValueError, match="kernel 4 and stride 1 .* odd kernel_size"):
        Upsample("transposed", 2, 3, 1, kernel_size=4)


def test_stride_frequency_energy_on_known_patterns():
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(8, 8)
    assert stride_frequency_energy(checker, 2).item() == pytest.approx(1.0)
    assert stride_frequency_energy(torch.full((16, 16), 3.0), 2).item() == pytest.approx(0.0, abs=1e-15)
    # half the mean-square is a stride-2 pattern: 1 + 0.5 * checkerboard has energy 0.25 / 1.25
    assert stride_frequency_energy(1 + 0.5 * checker, 2).item() == pytest.approx(0.25 / 1.25)
    # transposed conv, uniform weights: kernel 3 stride 2 overlaps unevenly into a pattern, kernel 4 does not
    ones = torch.ones(1, 1, 16, 16)
    uneven = Upsample("transposed", 1, 1, 2, kernel_size=3)
    even = Upsample("transposed", 1, 1, 2, kernel_size=4)
    for up in (uneven, even):
        torch.nn.init.ones_(up.conv.weight)
        torch.nn.init.zeros_(up.conv.bias)
    assert stride_frequency_energy(uneven(ones), 2, border=2).item() > 0.05
    assert stride_frequency_energy(even(ones), 2, border=2).item() < 1e-12


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError,
                       match="valid: nearest, bilinear, bicubic, transposed, pixelshuffle, maxunpool"):
        Upsample("deconv", 1, 1, 2)
    with pytest.raises(ValueError, match="indices"):
        Upsample("maxunpool", 1, 1, 2)(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="indices"):
        Upsample("nearest", 1, 1, 2)(torch.randn(1, 1, 4, 4),
                                     indices=torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="scale"):
        Upsample("nearest", 1, 1, 0)
    with pytest.raises(ValueError, match="odd"):
        Upsample("bilinear", 1, 1, 2, kernel_size=4)
    pooled, idx = MaxPool(2)(torch.randn(1, 1, 9, 9))
    with pytest.raises(ValueError, match="output_size"):
        max_unpool2d(pooled, idx, (4, 4))
