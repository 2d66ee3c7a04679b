"""Argument value types shared by the tools' ``argparse`` parsers: a bad value is an argument
error (usage line, then ``error: argument --x: expected ..., got ...``, exit code 2).

Pure Python, cheap to import: the tools parse their arguments before any heavy import.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


def checked(text: str, convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str) -> Any:
    """``convert(text)`` if it parses and is ``valid``, else an argparse error saying what was ``expected``."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return checked(text, int, lambda value: value >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return checked(text, int, lambda value: value >= 0, "an integer >= 0")


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """The type of an integer option of at least ``minimum`` (``why``: the reason, said in the error)."""

    def integer(text: str) -> int:
        return checked(text, int, lambda value: value >= minimum, f"an integer >= {minimum}{why}")

    integer.__name__ = f"integer >= {minimum}"  # argparse names the type in some messages
    return integer


def positive_float(text: str) -> float:
    return checked(text, float, lambda value: math.isfinite(value) and value > 0, "a positive number")


def unit_interval(text: str) -> float:
    return checked(text, float, lambda value: 0 <= value <= 1, "a number from 0 to 1")


DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``: whether this machine has it is checked where the model is made."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def fraction(text: str) -> float:
    return checked(text, float, lambda value: 0 < value <= 1, "a number in (0, 1]")


MIN_FRAME_RATE, MAX_FRAME_RATE = 0.1, 1000.0


def frame_rate(text: str) -> float:
    """A video frame rate: a finite number of frames per second from 0.1 to 1000 (OpenCV's writers
    hang or fail without naming the option on ``inf``, ``nan`` or 1e9)."""
    return checked(text, float, lambda value: MIN_FRAME_RATE <= value <= MAX_FRAME_RATE,
                   f"frames per second from {MIN_FRAME_RATE:g} to {MAX_FRAME_RATE:g}")


def size(text: str) -> tuple[int, int]:
    """``512x1024`` as ``(512, 1024)``."""
    height, sep, width = text.lower().partition("x")
    try:
        value = int(height), int(width)
    except ValueError:
        value = (0, 0)
    if not sep or min(value) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 512x1024, got {text!r}")
    return value


def folder(value: str) -> Path:
    """An output folder: refuses an empty path (``Path("")`` would be the current folder)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    return Path(value)
