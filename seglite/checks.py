"""Argument checks shared by every layer: each raises ``ValueError``/``TypeError`` naming the argument.

The one place seglite validates user input (house style, rule 18). Messages read
``"<owner>: <name> must be <what>, got <value>"`` so a config or command-line error says which
class and which argument were wrong. ``owner`` is optional (``None`` drops the prefix).

Pure Python and NumPy: safe to import from any layer, fast to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Size = tuple[int, int]


def _prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for ``bool`` (``True`` is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for ints and floats (Python or NumPy), False for ``bool``."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name: str, value: Any, owner: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{_prefix(owner)}{name} must be a positive integer, got {value!r}")
    return int(value)


def check_non_negative_int(name: str, value: Any, owner: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer >= 0."""
    if not is_int(value) or value < 0:
        raise ValueError(f"{_prefix(owner)}{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_positive_number(name: str, value: Any, owner: str | None = None) -> float:
    """``value`` as a ``float`` if it is a number > 0."""
    if not is_number(value) or not value > 0:
        raise ValueError(f"{_prefix(owner)}{name} must be a positive number, got {value!r}")
    return float(value)


def check_fraction(
    name: str, value: Any, owner: str | None = None, include_one: bool = True
) -> float:
    """``value`` as a ``float`` if it lies in [0, 1] (or [0, 1) with ``include_one=False``)."""
    upper_ok = (lambda v: v <= 1.0) if include_one else (lambda v: v < 1.0)
    if not is_number(value) or not (value >= 0.0 and upper_ok(value)):
        interval = "[0, 1]" if include_one else "[0, 1)"
        raise ValueError(f"{_prefix(owner)}{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, allowed: Sequence[Any], owner: str | None = None) -> Any:
    """``value`` if it is one of ``allowed`` (``True`` never stands for ``1``)."""
    if isinstance(value, bool) and not any(isinstance(choice, bool) for choice in allowed):
        raise ValueError(f"{_prefix(owner)}{name} must be one of {tuple(allowed)}, got {value!r}")
    try:
        found = value in allowed
    except TypeError:  # unhashable value against a set
        found = False
    if not found:
        raise ValueError(f"{_prefix(owner)}{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_size(name: str, size: Any, owner: str | None = None, allow_none: bool = False) -> Size | None:
    """``size`` as ``(height, width)`` of positive ints (``None`` passes with ``allow_none``)."""
    if size is None and allow_none:
        return None
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(is_int(v) and v > 0 for v in size)):
        allowed = " or None" if allow_none else ""
        raise ValueError(f"{_prefix(owner)}{name} must be (height, width) with positive integers{allowed}, got {size!r}")
    return int(size[0]), int(size[1])


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """``image`` if it is a non-empty ``(H, W, 3)`` uint8 RGB array; ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3) of RGB uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (RGB 0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) (RGB channels last), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {image.shape}")
    return image
