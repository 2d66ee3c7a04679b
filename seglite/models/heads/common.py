"""Argument checks shared by the segmentation heads."""

from __future__ import annotations


def check_positive(head: str, **values: int) -> None:
    """Raise ``ValueError`` naming ``head`` and the argument if any of ``values`` is not a positive int."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{head}: {name} must be a positive integer, got {value!r}")


def check_dropout(head: str, dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{head}: dropout must be in [0, 1), got {dropout!r}")
