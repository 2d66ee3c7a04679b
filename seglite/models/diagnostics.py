"""Dead depthwise kernels and never-activated ReLU channels: what small networks waste, measured.

MobileNetV2 (Sandler et al. 2018, section 3.2, "Linear Bottlenecks") shows ReLU discarding
information in narrow layers; training MobileNets, depthwise kernels are seen to end up all zero
("dead"), more so with ReLU and low-precision training, and some channels are never let through
by their ReLU. Both are capacity paid for in parameters and MACs and not used. Plain PyTorch:
used by ``tools/inspect_model.py`` on a checkpoint and by ``seglite.lit.diagnostics.ModelDiagnostics``
during training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

DEAD_KERNEL_THRESHOLD = 1e-3
"""A depthwise kernel whose L2 norm is below this contributes (almost) nothing but a constant:
at least three orders of magnitude under the norms of trained kernels (He-initialised 3x3 ones: ~1.4)."""

RECTIFIERS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)


@dataclass(frozen=True)
class LayerCount:
    """Of a layer's ``total`` kernels or channels, ``count`` are dead / never active."""

    layer: str
    total: int
    count: int

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0


def total_share(counts: Sequence[LayerCount]) -> float:
    """The share over all layers together (each kernel or channel counts once)."""
    total = sum(item.total for item in counts)
    return sum(item.count for item in counts) / total if total else 0.0


def is_depthwise(module: nn.Module) -> bool:
    """A ``Conv2d`` whose every group sees one input channel (depthwise, any channel multiplier)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def dead_depthwise_kernels(model: nn.Module, threshold: float = DEAD_KERNEL_THRESHOLD) -> list[LayerCount]:
    """Per depthwise convolution of ``model``, how many of its kernels have an L2 norm below ``threshold``."""
    if not threshold > 0:
        raise ValueError(f"dead_depthwise_kernels: threshold must be a positive number, got {threshold!r}")
    counts = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if is_depthwise(module):
                norms = module.weight.detach().flatten(1).float().norm(dim=1)
                counts.append(LayerCount(name, norms.numel(), int((norms < threshold).sum())))
    return counts


class ActivationRecorder:
    """Records which channels of every ReLU/ReLU6 of a model are ever positive, through forward hooks.

    Use as a context manager (hooks are removed on exit), or ``attach()`` / ``detach()``; every
    forward pass in between updates the record. ``counts()`` gives, per rectifier, the channels
    that were never positive at any position of any image seen; ``seen`` tells how many
    forward passes were recorded.
    """

    def __init__(self, model: nn.Module, kinds: tuple[type[nn.Module], ...] = RECTIFIERS) -> None:
        self.model = model
        self.kinds = kinds
        self.active: dict[str, torch.Tensor] = {}
        self.seen = 0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            # any positive value of a channel anywhere in the batch: (N, C, ...) -> (C,)
            positive = (output.detach() > 0).transpose(0, 1).flatten(1).any(dim=1)
            previous = self.active.get(name)
            self.active[name] = positive if previous is None else previous | positive

        return record

    def _count(self, module: nn.Module, args: tuple, output: object) -> None:
        self.seen += 1

    def attach(self) -> ActivationRecorder:
        """Register the hooks (once; attaching again changes nothing)."""
        if self._handles:
            return self
        for name, module in self.model.named_modules():
            if isinstance(module, self.kinds):
                self._handles.append(module.register_forward_hook(self._hook(name)))
        self._handles.append(self.model.register_forward_hook(self._count))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def reset(self) -> None:
        self.active = {}
        self.seen = 0

    def __enter__(self) -> ActivationRecorder:
        return self.attach()

    def __exit__(self, *exc_info: object) -> None:
        self.detach()

    def counts(self) -> list[LayerCount]:
        """Per recorded rectifier (in model order), its channels and how many were never positive."""
        return [
            LayerCount(name, active.numel(), int((~active).sum()))
            for name, active in self.active.items()
        ]


def never_activated_channels(model: nn.Module, batches: Iterable[torch.Tensor]) -> list[LayerCount]:
    """Per ReLU/ReLU6 of ``model``, the channels never positive on any of ``batches`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    try:
        with ActivationRecorder(model) as recorder, torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        model.train(was_training)
    if recorder.seen == 0:
        raise ValueError("never_activated_channels: batches is empty; give at least one image batch")
    return recorder.counts()


def format_table(counts: Sequence[LayerCount], total_name: str, count_name: str) -> list[str]:
    """Markdown rows: one per layer, then the total."""
    lines = [f"| layer | {total_name} | {count_name} | share |", "|---|---|---|---|"]
    for item in counts:
        lines.append(f"| {item.layer} | {item.total} | {item.count} | {100 * item.share:.1f}% |")
    total = sum(item.total for item in counts)
    lines.append(f"| all | {total} | {sum(item.count for item in counts)} | {100 * total_share(counts):.1f}% |")
    return lines
