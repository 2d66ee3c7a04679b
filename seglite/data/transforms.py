"""Training and evaluation transforms (albumentations), image and mask always together.

Train: random scale of a base size, pad (mask 255) and random crop, horizontal flip,
photometric distortion, ImageNet normalisation, tensors. Eval: optional resize,
normalisation, tensors. Masks are resampled nearest-neighbour only; a transformed sample
holds a float32 ``(3, H, W)`` image and a ``(H, W)`` mask (the data sets make it int64).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

# albumentations asks PyPI for a newer version on every import unless told not to: seglite makes
# no network calls at run time (and the request costs seconds where there is no network)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.pytorch import ToTensorV2
from pydantic import Field

from seglite.checks import check_image, check_size

from .constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

_Size = tuple[int, int]


class RandomScaleCrop(A.DualTransform):
    """Random scale, centre pad and random crop in one step, computing only the cropped pixels.

    Same result as ``Resize(base_size)`` + ``RandomScale`` + ``RandomCrop(pad_if_needed=True)``
    (bilinear image, nearest mask, cv2.resize's pixel-centre grid, centre padding, the same
    distribution of scales and offsets): one ``cv2.warpAffine`` maps each output pixel straight to
    its source, instead of scaling the whole image and then cutting the crop out of it. With
    ``base_size`` the image is also resampled once rather than twice.

    Why our own transform: it is measurably faster and lighter. On 1024x2048 input, 768x768
    crops, scale 0.5-2.0, one thread (``python benchmarks/data.py --compare --images 8
    --repeats 7``, 2-core AMD EPYC, AVX2, as in the README's Training section): the train
    transforms take 14.7 ms per image against 19.8 ms for the albumentations chain, and decode +
    transforms run at 13.6 against 11.7 images/s per worker (PNG decode is the rest). The chain also allocates a
    scaled copy of up to 25 MB per sample at scale 2.

    Args:
        crop_size: output ``(height, width)``.
        scale_range: range of the random factor applied to ``base_size``.
        base_size: ``(height, width)`` the factor is relative to; ``None`` uses the input size.
        fill: image padding value.
        fill_mask: mask padding value (the ignore index).
    """

    class InitSchema(BaseTransformInitSchema):
        crop_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
        scale_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
        base_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None
        fill: float
        fill_mask: float

    def __init__(
        self,
        crop_size: _Size,
        scale_range: tuple[float, float] = (0.5, 2.0),
        base_size: _Size | None = None,
        fill: float = 0,
        fill_mask: float = IGNORE_INDEX,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if scale_range[0] > scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with low <= high, got {scale_range}")
        self.crop_size = tuple(crop_size)
        self.scale_range = tuple(scale_range)
        self.base_size = None if base_size is None else tuple(base_size)
        self.fill = fill
        self.fill_mask = fill_mask

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        base_height, base_width = self.base_size or (height, width)
        scale = self.py_random.uniform(*self.scale_range)
        # the scaled size albumentations' RandomScale would produce, and its centre padding
        scaled_height, scaled_width = max(int(base_height * scale), 1), max(int(base_width * scale), 1)
        crop_height, crop_width = self.crop_size
        pad_height, pad_width = max(crop_height - scaled_height, 0), max(crop_width - scaled_width, 0)
        # crop origin in scaled-image pixels; negative where the crop starts in the padding
        top = self.py_random.randint(0, scaled_height + pad_height - crop_height) - pad_height // 2
        left = self.py_random.randint(0, scaled_width + pad_width - crop_width) - pad_width // 2
        return {
            "top": top,
            "left": left,
            "scaled_size": (scaled_height, scaled_width),
            "source_scale": (height / scaled_height, width / scaled_width),
        }

    def _resample(self, image: np.ndarray, pad_value: float, interpolation: int, **params: Any) -> np.ndarray:
        top, left = params["top"], params["left"]
        (scaled_height, scaled_width), (scale_y, scale_x) = params["scaled_size"], params["source_scale"]
        crop_height, crop_width = self.crop_size
        out = np.full((crop_height, crop_width, *image.shape[2:]), pad_value, dtype=image.dtype)
        # output rows and columns that show the scaled image; the rest is padding
        row0, row1 = max(0, -top), min(crop_height, scaled_height - top)
        col0, col1 = max(0, -left), min(crop_width, scaled_width - left)
        if row1 <= row0 or col1 <= col0:
            return out
        # output pixel (r, c) is scaled pixel (r + top, c + left), whose centre lies at source
        # (scaled + 0.5) * scale - 0.5, as in cv2.resize; the warp computes only these pixels
        matrix = np.array(
            [
                [scale_x, 0.0, (col0 + left + 0.5) * scale_x - 0.5],
                [0.0, scale_y, (row0 + top + 0.5) * scale_y - 0.5],
            ]
        )
        window = cv2.warpAffine(
            image,
            matrix,
            (col1 - col0, row1 - row0),
            flags=interpolation | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,  # as cv2.resize does at the image edge
        )
        out[row0:row1, col0:col1] = window.reshape(out[row0:row1, col0:col1].shape)
        return out

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return self._resample(img, self.fill, cv2.INTER_LINEAR, **params)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        # the same pixel-centre grid as the image, rounded to the nearest source pixel
        return self._resample(mask, self.fill_mask, cv2.INTER_NEAREST, **params)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("crop_size", "scale_range", "base_size", "fill", "fill_mask")


def photometric_distortion(strength: float = 1.0) -> A.BasicTransform:
    """Brightness, contrast, saturation and hue jitter, like mmsegmentation's PhotoMetricDistortion
    but milder in hue (about 7 degrees), which some classes of the demo set are told apart by."""
    return A.ColorJitter(
        brightness=0.2 * strength, contrast=0.2 * strength, saturation=0.2 * strength, hue=0.02 * strength, p=0.8
    )


def train_transform(
    crop_size: _Size,
    scale_range: tuple[float, float] = (0.5, 2.0),
    base_size: _Size | None = None,
    hflip_prob: float = 0.5,
    photometric: bool = True,
    crop_before_resize: bool = True,
) -> A.Compose:
    """Training augmentation: random scale, pad (mask 255), random crop, flip, colour jitter, normalise.

    Args:
        crop_size: ``(height, width)`` of the crops.
        scale_range: random factor on ``base_size`` (0.5-2.0 as the torchvision references).
        base_size: ``(height, width)`` the scale is relative to; ``None`` uses each image's own
            size (1024x2048 for Cityscapes).
        hflip_prob: probability of a horizontal flip.
        photometric: whether to add the photometric distortion.
        crop_before_resize: resample only the crop window (:class:`RandomScaleCrop`, same result,
            faster); ``False`` builds the plain albumentations chain, kept for comparison.
    """
    check_size("crop_size", crop_size)
    check_size("base_size", base_size, allow_none=True)
    if not (len(scale_range) == 2 and 0 < scale_range[0] <= scale_range[1]):
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
    crop_size = (int(crop_size[0]), int(crop_size[1]))
    if crop_before_resize:
        geometric: list[A.BasicTransform] = [
            RandomScaleCrop(crop_size, tuple(scale_range), None if base_size is None else tuple(base_size))
        ]
    else:
        geometric = [] if base_size is None else [A.Resize(*base_size, mask_interpolation=cv2.INTER_NEAREST_EXACT)]
        geometric += [
            A.RandomScale(
                scale_limit=(scale_range[0] - 1.0, scale_range[1] - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST_EXACT,
                p=1.0,
            ),
            A.RandomCrop(*crop_size, pad_if_needed=True, fill=0, fill_mask=IGNORE_INDEX),
        ]
    return A.Compose(
        [
            *geometric,
            A.HorizontalFlip(p=hflip_prob),
            *([photometric_distortion()] if photometric else []),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )


def eval_transform(size: _Size | None = None) -> A.Compose:
    """Evaluation preprocessing: optional resize to ``(height, width)``, normalise, tensors.

    The mask is resized nearest-neighbour with the image, so metrics are then computed at
    ``size``; ``None`` keeps the original resolution.
    """
    check_size("size", size, allow_none=True)
    resize = [] if size is None else [A.Resize(*size, mask_interpolation=cv2.INTER_NEAREST_EXACT)]
    return A.Compose(
        [*resize, A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0), ToTensorV2()]
    )


_NORMALIZE = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0, p=1.0)


def normalize_image(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB uint8 to the network's input: ImageNet-normalised float32 ``(3, H, W)``.

    The same operation as :func:`eval_transform` without resize, for predictors that read
    frames themselves (numpy, so ONNX Runtime can take it as is).
    """
    check_image(image)
    return np.ascontiguousarray(_NORMALIZE(image=image)["image"].transpose(2, 0, 1))
