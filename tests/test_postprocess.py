"""upsampled_argmax equals PyTorch's bilinear resize + argmax, on logits with and without structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglite.inference.postprocess import upsampled_argmax


def reference(logits: torch.Tensor, upsampled: tuple[int, int], output: tuple[int, int]) -> np.ndarray:
    resized = F.interpolate(logits, size=upsampled, mode="bilinear", align_corners=False)
    return resized[..., : output[0], : output[1]].argmax(dim=1).to(torch.uint8).numpy()


def smooth_logits(batch: int, classes: int, blobs: tuple[int, int], size: tuple[int, int], seed: int) -> torch.Tensor:
    """Class regions like a trained model's: coarse random fields resized up, so most cells agree."""
    generator = torch.Generator().manual_seed(seed)
    coarse = 4 * torch.randn(batch, classes, *blobs, generator=generator)
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(
    "coarse, upsampled, output",
    [
        ((64, 128), (512, 1024), (512, 1024)),  # stride 8, no padding
        ((33, 65), (264, 520), (257, 513)),  # padded input, cropped back
        ((5, 7), (40, 56), (37, 50)),
        ((4, 6), (61, 97), (61, 97)),  # a ratio that is not an integer
        ((1, 1), (8, 8), (8, 8)),  # one coarse pixel
        ((16, 2), (128, 16), (128, 16)),
    ],
)
@pytest.mark.parametrize("structure", ["smooth", "noise"])
def test_equals_interpolate_then_argmax(coarse, upsampled, output, structure):
    if structure == "smooth":
        logits = smooth_logits(2, 19, (max(1, coarse[0] // 8), max(1, coarse[1] // 8)), coarse, seed=coarse[0])
    else:
        logits = torch.randn(2, 19, *coarse, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(upsampled_argmax(logits, upsampled, output), reference(logits, upsampled, output))
    np.testing.assert_array_equal(upsampled_argmax(logits.numpy(), upsampled, output), reference(logits, upsampled, output))


def test_ties_resolve_to_the_first_class_as_argmax_does():
    logits = torch.zeros(1, 5, 4, 4)
    logits[:, 2:4] = 1.0  # classes 2 and 3 tie everywhere
    logits[:, 4, :2] = 1.0  # class 4 ties them on the top half
    np.testing.assert_array_equal(upsampled_argmax(logits, (32, 32)), reference(logits, (32, 32), (32, 32)))
    assert set(np.unique(upsampled_argmax(logits, (32, 32)))) == {2}


def test_too_many_classes():
    with pytest.raises(ValueError, match="at most 254 classes"):
        upsampled_argmax(torch.zeros(1, 255, 2, 2), (16, 16))


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 16])
def test_every_integer_stride_takes_the_block_form_and_equals_interpolate(factor: int) -> None:
    """Whole blocks per 2x2 coarse neighbourhood (odd factors put a block edge on a source row), noise logits."""
    logits = torch.randn(1, 19, 11, 13, generator=torch.Generator().manual_seed(factor))
    upsampled = (11 * factor, 13 * factor)
    for output in (upsampled, (upsampled[0] - factor // 2, upsampled[1] - 1)):
        np.testing.assert_array_equal(upsampled_argmax(logits, upsampled, output), reference(logits, upsampled, output))
