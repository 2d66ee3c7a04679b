"""Train ids of bilinearly upsampled logits without upsampling every class: argmax where it is decided.

A segmentation head gives logits at 1/8 of the input; the mask is the argmax of those logits
resized bilinearly (``align_corners=False``) to the input. Done directly, 19 classes at 512x1024
are 10 M interpolated values and an argmax over them: as long as the network itself on a CPU.

But a bilinear output pixel is a convex combination of its 2x2 source pixels, and a convex
combination of vectors that share their argmax has that argmax too (strictly larger entries
before it, larger or equal after it, stay so under positive weights). So the argmax at the
coarse resolution decides every output pixel whose four sources agree; only pixels near a class
boundary need their logits interpolated. With an integer ratio (a model's stride: always on the
predictor's coarse path) the output is a grid of equal blocks, one per 2x2 coarse neighbourhood:
a block is filled whole when its four corners agree, and the others are interpolated with one
matrix product. Measured on the demo LR-ASPP MobileNetV3-Large's logits of a demo image on a
2-core AMD EPYC Zen 4: 1.8 ms at 512x1024 (12% of the blocks undecided) and 7.8 ms at 1024x2048,
against 19 and 95 ms for that network's OpenVINO bf16 graph, and 18 / 93 ms for the per-pixel
form this replaced. The result equals ``F.interpolate(logits, size, mode="bilinear").argmax(1)``
up to float rounding at near-ties (none in 1.3 M pixels of random logits, tests/test_postprocess.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

UNDECIDED = 255
BLOCK_CHUNK = 8192
"""Undecided blocks interpolated at once at most (19 classes of 8x8 blocks: 40 MB of float32)."""
SINGLE_THREAD_PRODUCT = 65536
"""Blocks x pixels per block of one matrix product at most: OpenBLAS (NumPy's BLAS) runs products of
``rows * columns * 4`` up to 4 x 65536 on the calling thread (``interface/gemm.c``, ``SMP_THRESHOLD_MIN
* GEMM_MULTITHREAD_THRESHOLD``). A larger one wakes its worker threads, which then spin ~0.1 s and take
the cores from the runtime's next call: an OpenVINO bf16 graph at 1024x2048 on 2 Zen 4 cores took
114-120 ms 20 ms after such a product, 76-77 ms without."""


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
    other when the cores are busy (and PyTorch's argmax over the class axis of a ``(C, N)``
    array took 20x NumPy's running maximum here).

    Args:
        logits: ``(N, C, h, w)`` float logits (C < 255).
        upsampled_size: the ``(height, width)`` the logits are resized to (a model's padded input).
        output_size: the top-left ``(height, width)`` kept (the input before padding); default all.

    Returns:
        ``(N, H, W)`` uint8 class indices.
    """
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().float().numpy()
    logits = np.asarray(logits, dtype=np.float32)
    height, width = output_size or upsampled_size
    _, classes, low_height, low_width = logits.shape
    if classes >= UNDECIDED:
        raise ValueError(f"at most {UNDECIDED - 1} classes, got {classes}")
    factor_y, rest_y = divmod(upsampled_size[0], low_height)
    factor_x, rest_x = divmod(upsampled_size[1], low_width)
    masks = np.empty((len(logits), height, width), dtype=np.uint8)
    for index, image in enumerate(logits):
        if rest_y == 0 and rest_x == 0:  # a model's stride: always, on the predictor's coarse path
            masks[index] = _block_argmax(image, factor_y, factor_x)[:height, :width]
        else:
            masks[index] = _pixel_argmax(image, upsampled_size, (height, width))
    return masks


@lru_cache(maxsize=16)
def _block_weights(factor_y: int, factor_x: int) -> tuple[np.ndarray, int, int]:
    """``(factor_y * factor_x, 4)`` bilinear weights of the four corners of a block, and the block grid's offset.

    On a grid padded by one cell on each side (edges repeated: PyTorch's clamping), output pixel
    ``y`` lies between padded rows ``k`` and ``k + 1`` with ``y = factor * k + r - offset``,
    ``offset = ceil(factor / 2)``, at weight ``(r - offset + 0.5) / factor + 0.5`` of row ``k + 1``:
    the same ``r``-th weight in every block.
    """
    offset_y, offset_x = (factor_y + 1) // 2, (factor_x + 1) // 2
    wy = (np.arange(factor_y) - offset_y + 0.5) / factor_y + 0.5
    wx = (np.arange(factor_x) - offset_x + 0.5) / factor_x + 0.5
    corners = [np.outer(1 - wy, 1 - wx), np.outer(1 - wy, wx), np.outer(wy, 1 - wx), np.outer(wy, wx)]
    return np.stack(corners, axis=-1).reshape(factor_y * factor_x, 4).astype(np.float32), offset_y, offset_x


def _block_argmax(image: np.ndarray, factor_y: int, factor_x: int) -> np.ndarray:
    """Upsampled argmax of ``(C, h, w)`` logits by integer factors: ``(factor_y * h, factor_x * w)`` uint8 (a view).

    Every block of ``factor_y x factor_x`` output pixels between four coarse cells is decided at
    once when the four agree; each undecided block is interpolated with one matrix product of its
    corners' logits (exact bilinear weights, summed in another order than PyTorch's: equal up to
    float rounding at near-ties). On a demo LR-ASPP at 512x1024, 12% of the blocks are undecided,
    and the whole takes ~1.6 ms against 18 ms for the per-pixel form (``_pixel_argmax``).
    """
    classes, low_height, low_width = image.shape
    weights, offset_y, offset_x = _block_weights(factor_y, factor_x)
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge")
    coarse = padded.argmax(axis=0).astype(np.uint8)
    first = coarse[:-1, :-1]
    undecided = (first != coarse[:-1, 1:]) | (first != coarse[1:, :-1]) | (first != coarse[1:, 1:])
    blocks = np.empty((low_height + 1, factor_y, low_width + 1, factor_x), dtype=np.uint8)
    blocks[...] = first[:, None, :, None]
    all_rows, all_columns = np.nonzero(undecided)
    # in chunks: the interpolated values of every undecided block of an 8000x6000 photo at once
    # would take ~700 MB, and small products keep NumPy's BLAS on this thread (SINGLE_THREAD_PRODUCT)
    chunk = max(1, min(BLOCK_CHUNK, SINGLE_THREAD_PRODUCT // (factor_y * factor_x)))
    for start in range(0, len(all_rows), chunk):
        rows, columns = all_rows[start : start + chunk], all_columns[start : start + chunk]
        corners = np.stack(
            [padded[:, rows, columns], padded[:, rows, columns + 1], padded[:, rows + 1, columns], padded[:, rows + 1, columns + 1]],
            axis=-1,
        )  # (C, U, 4)
        # the product in PyTorch (MKL, OpenMP threads), not NumPy: NumPy's OpenBLAS threads keep spinning
        # ~0.1 s after a call and take the cores from the runtime's next call (an OpenVINO bf16 graph
        # at 1024x2048 on 2 Zen 4 cores took 114-120 ms 20 ms after NumPy's product, 76-77 after this one)
        values = (torch.from_numpy(corners) @ torch.from_numpy(weights.T)).numpy()  # (C, U, factor_y * factor_x)
        best, winner = values[0].copy(), np.zeros(values.shape[1:], dtype=np.uint8)
        for klass in range(1, classes):  # strictly greater: ties keep the first class, as argmax does
            better = values[klass] > best
            np.maximum(best, values[klass], out=best)
            winner[better] = klass
        blocks[rows, :, columns, :] = winner.reshape(-1, factor_y, factor_x)
    canvas = blocks.reshape(factor_y * (low_height + 1), factor_x * (low_width + 1))
    return canvas[offset_y : offset_y + factor_y * low_height, offset_x : offset_x + factor_x * low_width]


def _pixel_argmax(image: np.ndarray, upsampled_size: tuple[int, int], output_size: tuple[int, int]) -> np.ndarray:
    """Upsampled argmax of ``(C, h, w)`` logits at any ratio: ``output_size`` uint8, decided per output pixel."""
    height, width = output_size
    _, low_height, low_width = image.shape
    y0, y1, wy = (array[:height] for array in _source_indices(low_height, upsampled_size[0]))
    x0, x1, wx = (array[:width] for array in _source_indices(low_width, upsampled_size[1]))
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
    return mask
