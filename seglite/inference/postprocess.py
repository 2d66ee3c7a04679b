"""Train ids of bilinearly upsampled logits without upsampling every class: argmax where it is decided.

A segmentation head gives logits at 1/8 of the input; the mask is the argmax of those logits
resized bilinearly (``align_corners=False``) to the input. Done directly, 19 classes at 512x1024
are 10 M interpolated values and an argmax over them: as long as the network itself on a CPU.

But a bilinear output pixel is a convex combination of its 2x2 source pixels, and a convex
combination of vectors that share their argmax has that argmax too (strictly larger entries
before it, larger or equal after it, stay so under positive weights). So the argmax at the
coarse resolution decides every output pixel whose four sources agree; only pixels near a class
boundary need their logits interpolated. Measured on a briefly trained demo LR-ASPP
MobileNetV3-Large at 512x1024 (2-core AVX2 CPU): 27% of the coarse cells undecided, 25-30 ms
here against ~34 ms for OpenVINO's own Interpolate + TopK; a well-trained model has fewer
boundaries. The result equals
``F.interpolate(logits, size, mode="bilinear").argmax(1)`` up to float rounding at exact ties.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

UNDECIDED = 255


@lru_cache(maxsize=16)
def _source_indices(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First source index, second source index and weight of the second, per output index.

    PyTorch's ``align_corners=False`` rule: source ``(dst + 0.5) * in / out - 0.5``, clamped
    at 0; the second index stays on the last row/column at the border.
    """
    source = np.maximum((np.arange(out_size, dtype=np.float32) + 0.5) * np.float32(in_size / out_size) - 0.5, 0)
    first = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    second = np.where(first < in_size - 1, first + 1, first)
    weight = np.clip(source - first, 0, 1).astype(np.float32)
    return first, second, weight


def upsampled_argmax(
    logits: np.ndarray | torch.Tensor, upsampled_size: tuple[int, int], output_size: tuple[int, int] | None = None
) -> np.ndarray:
    """``argmax`` over classes of ``logits`` resized bilinearly to ``upsampled_size``, cropped to ``output_size``.

    NumPy throughout: on small arrays it beats PyTorch's threaded kernels, which wait on each
    other when the cores are busy.

    Args:
        logits: ``(N, C, h, w)`` float logits (C < 255).
        upsampled_size: the ``(height, width)`` the logits are resized to (a model's padded input).
        output_size: the top-left ``(height, width)`` kept (the input before padding); default all.

    Returns:
        ``(N, H, W)`` uint8 class indices.
    """
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().float().numpy()
    height, width = output_size or upsampled_size
    _, classes, low_height, low_width = logits.shape
    if classes >= UNDECIDED:
        raise ValueError(f"at most {UNDECIDED - 1} classes, got {classes}")
    y0, y1, wy = (array[:height] for array in _source_indices(low_height, upsampled_size[0]))
    x0, x1, wx = (array[:width] for array in _source_indices(low_width, upsampled_size[1]))
    masks = np.empty((len(logits), height, width), dtype=np.uint8)
    for index, image in enumerate(logits):
        coarse = image.argmax(axis=0).astype(np.uint8)  # (h, w)
        # a coarse cell (i, j) decides when its sources (i or i+1, j or j+1; clamped) agree
        below = np.concatenate([coarse[1:], coarse[-1:]], axis=0)
        right = np.concatenate([coarse[:, 1:], coarse[:, -1:]], axis=1)
        diagonal = np.concatenate([right[1:], right[-1:]], axis=0)
        decided = (coarse == below) & (coarse == right) & (coarse == diagonal)
        cells = np.where(decided, coarse, np.uint8(UNDECIDED))
        mask = cells[y0][:, x0]  # every output pixel takes the cell of its first source
        rows, columns = np.nonzero(mask == UNDECIDED)
        if len(rows):
            # bilinear is separable: resize the coarse logits along x (cheap, coarse rows only),
            # then interpolate the undecided pixels between their two rows
            pixels = image.transpose(1, 2, 0)  # (h, w, C)
            along_x = pixels[:, x0] * (1 - wx[:, None]) + pixels[:, x1] * wx[:, None]  # (h, W, C)
            weight = wy[rows, None]
            values = along_x[y0[rows], columns] * (1 - weight) + along_x[y1[rows], columns] * weight
            mask[rows, columns] = values.argmax(axis=1)
        masks[index] = mask
    return masks
