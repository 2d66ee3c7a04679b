"""Train and eval transforms: shapes, alignment of image and mask, equivalence with albumentations."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from seglite.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomScaleCrop,
    eval_transform,
    normalize_image,
    train_transform,
)

COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40], [40, 220, 220]], np.uint8)


def blocky_scene(height: int = 48, width: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mask of rectangles of 5 classes (some ignore) and the image that paints it in fixed colours."""
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 5, (height // 8, width // 8)).astype(np.uint8)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    mask[:4, :4] = 255  # an ignored corner, painted black
    image = np.zeros((height, width, 3), np.uint8)
    image[mask < 255] = COLOURS[mask[mask < 255]]
    return image, mask


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Undo normalisation: (3, H, W) float tensor to (H, W, 3) values 0..255."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return (image.permute(1, 2, 0).numpy() * std + mean) * 255


def assert_aligned(image: np.ndarray, mask: np.ndarray) -> int:
    """Wherever a pixel's 5x5 neighbourhood is one class, the image shows that class's colour; padding is black.

    5x5, not 3x3: bilinear upscaling by s blends over one source pixel, s output pixels, around
    an edge, so colours mix up to s / 2 (here 1.25) pixels from where the nearest-neighbour mask changes.
    """
    mask = mask.astype(np.int64)
    kernel = np.ones((5, 5), np.uint8)
    uniform = cv2.erode(mask.astype(np.uint8), kernel) == cv2.dilate(mask.astype(np.uint8), kernel)
    uniform[[0, 1, -2, -1], :] = uniform[:, [0, 1, -2, -1]] = False  # edges may blend in what lies outside
    inside = uniform & (mask != 255)
    assert not inside.any() or np.abs(image[inside] - COLOURS[mask[inside]]).max() < 3
    padding = uniform & (mask == 255)
    assert not padding.any() or np.abs(image[padding]).max() < 3
    return int(inside.sum())


# the plain albumentations chain resizes twice when base_size is set (to the base, then by the
# random scale), which blurs edges wider than a 5x5 neighbourhood: it is checked without base_size
@pytest.mark.parametrize(("crop_before_resize", "base_size"), [(True, None), (True, (40, 120)), (False, None)])
def test_train_transform_keeps_image_and_mask_aligned(crop_before_resize, base_size):
    image, mask = blocky_scene()
    transform = train_transform((32, 40), scale_range=(0.4, 2.5), base_size=base_size, photometric=False,
                                crop_before_resize=crop_before_resize)  # fmt: skip
    transform.set_random_seed(0)
    checked = 0
    for _ in range(20):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (3, 32, 40) and out["image"].dtype == torch.float32
        assert out["mask"].shape == (32, 40)
        checked += assert_aligned(to_uint8(out["image"]), out["mask"].numpy())
    assert checked > 20 * 32 * 40 * 0.25


def test_flip_and_photometric_change_the_image_not_the_layout():
    image, mask = blocky_scene(32, 32)
    transform = train_transform((32, 32), scale_range=(1.0, 1.0), hflip_prob=1.0)
    out = transform(image=image, mask=mask)
    assert np.array_equal(out["mask"].numpy(), mask[:, ::-1])
    # colour jitter moves colours, but each class region stays one colour (alignment holds)
    restored = to_uint8(out["image"])
    for k in range(5):
        region = restored[out["mask"].numpy() == k]
        assert region.std(axis=0).max() < 8


@pytest.mark.parametrize("scale", [0.5, 0.77, 1.0, 1.6, 2.0])
def test_random_scale_crop_equals_full_resize_then_pad_and_crop(scale):
    """Resampling only the crop window gives the crop of the fully resized, padded image.

    The image to within one grey level (fixed-point rounding). cv2's own nearest-neighbour
    resize (INTER_NEAREST_EXACT) is off by one source pixel on a few rows at some ratios, so
    the mask must agree exactly at whole-number ratios and nearly everywhere otherwise.
    """
    image, mask = blocky_scene(48, 96, seed=1)
    image = cv2.GaussianBlur(image, (5, 5), 2)  # smooth content so that bilinear values matter
    transform = RandomScaleCrop((40, 64), scale_range=(scale, scale))
    for seed in range(5):
        transform.set_random_seed(seed)
        params = transform.get_params_dependent_on_data({"shape": image.shape}, {})
        height, width = params["scaled_size"]
        scaled = A.Resize(height, width, mask_interpolation=cv2.INTER_NEAREST_EXACT)(image=image, mask=mask)
        pad = 64
        padded_image = cv2.copyMakeBorder(scaled["image"], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        padded_mask = cv2.copyMakeBorder(scaled["mask"], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
        top, left = params["top"] + pad, params["left"] + pad
        expected_image = padded_image[top : top + 40, left : left + 64]
        expected_mask = padded_mask[top : top + 40, left : left + 64]
        got_image, got_mask = transform.apply(image, **params), transform.apply_to_mask(mask, **params)
        assert np.abs(got_image.astype(int) - expected_image).max() <= 1
        agreement = (got_mask == expected_mask).mean()
        assert agreement == 1.0 if scale in (0.5, 1.0, 2.0) else agreement > 0.95


def test_random_scale_crop_samples_the_requested_scales():
    transform = RandomScaleCrop((16, 16), scale_range=(0.5, 2.0), base_size=(100, 200))
    transform.set_random_seed(0)
    heights = [transform.get_params_dependent_on_data({"shape": (50, 50, 3)}, {})["scaled_size"][0] for _ in range(200)]
    assert 50 <= min(heights) < 60 and 190 < max(heights) <= 200


def test_eval_transform_and_normalize_image_agree():
    image, mask = blocky_scene()
    out = eval_transform()(image=image, mask=mask)
    assert out["image"].shape == (3, 48, 96) and np.array_equal(out["mask"].numpy(), mask)
    assert np.array_equal(normalize_image(image), out["image"].numpy())
    resized = eval_transform((24, 32))(image=image, mask=mask)
    assert resized["image"].shape == (3, 24, 32) and set(np.unique(resized["mask"].numpy())) <= set(np.unique(mask))
    with pytest.raises(ValueError, match="uint8"):
        normalize_image(image.astype(np.float32))


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="crop_size"):
        train_transform((0, 10))
    with pytest.raises(ValueError, match="scale_range"):
        train_transform((10, 10), scale_range=(2.0, 0.5))
    with pytest.raises(ValueError, match="size"):
        eval_transform((10,))  # type: ignore[arg-type]
