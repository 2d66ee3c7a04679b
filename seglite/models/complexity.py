"""Parameters, multiply-accumulates and memory access cost of a model, per operator and per category.

``count_params_and_macs`` gives the papers' two numbers. ``count_costs`` lists every operator one
eval-mode forward pass executes, with its MACs, the bytes it reads and writes (the *memory access
cost* of ShuffleNetV2, Ma et al. 2018, section 2: "FLOPs is an indirect metric"), the module it
ran in and a category (depthwise conv, 1x1 conv, squeeze-excite, ...), so that a time profile can
be set beside MACs and bytes (``python benchmarks/benchmark.py --sections profile``).

A model built on the meta device (``with torch.device("meta"): ...``) is counted without
computing anything, so even 1024x2048 inputs take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops.misc import SqueezeExcitation

from .layers import SqueezeExcite
from .private_api import TorchDispatchMode

CATEGORIES = (
    "depthwise conv",
    "1x1 conv",
    "kxk conv",
    "squeeze-excite",
    "activation",
    "resize",
    "batch norm",
    "copy / layout",
    "other",
)
"""Operator categories, in display order. Everything inside a squeeze-excite module (its pooling,
1x1 convolutions, gate and product) is "squeeze-excite"; a linear layer is a "1x1 conv"; "kxk conv"
is any non-depthwise convolution with a kernel larger than 1x1 (dense or grouped); "copy / layout"
moves data without computing (concatenation, padding, the copy of a channel shuffle, a runtime's
layout reorders); "other" is the rest (element-wise sums and products, pooling)."""

SQUEEZE_EXCITE_TYPES: tuple[type[nn.Module], ...] = (SqueezeExcite, SqueezeExcitation)
"""Module classes whose operators count as "squeeze-excite" (ours and torchvision's)."""

_CONVOLUTIONS = {
    "conv1d", "conv2d", "conv3d", "convolution", "_convolution", "mkldnn_convolution",
    "cudnn_convolution", "_conv_depthwise2d", "conv_depthwise3d", "_nnpack_spatial_convolution",
    "_mps_convolution", "_slow_conv2d_forward", "thnn_conv2d", "slow_conv_dilated2d",
}  # fmt: skip
_MATRIX_PRODUCTS = {"linear", "addmm", "mm", "matmul", "bmm", "baddbmm"}
_ACTIVATIONS = {
    "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "mish",
    "leaky_relu", "elu", "selu", "prelu", "tanh", "softplus", "threshold",
}  # fmt: skip
_BATCH_NORMS = {
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_batch_norm_impl_index", "cudnn_batch_norm", "miopen_batch_norm", "_batch_norm_no_update",
}  # fmt: skip
_COPIES = {
    "clone", "contiguous", "copy", "_to_copy", "to", "cat", "concat", "stack", "constant_pad_nd", "pad",
    "reflection_pad2d", "replication_pad2d", "narrow_copy", "transpose", "reorderinput", "reorderoutput",
    "reorder", "split", "slice", "cast", "convert",
}  # fmt: skip
# Allocation without writing: no memory traffic (the operator that fills the tensor is counted)
_ALLOCATIONS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}


def operator_name(name: str) -> str:
    """The bare operator name of ``aten::hardswish_``, ``aten.convolution.default`` or ``hardswish``."""
    name = name.split("::")[-1]
    if name.startswith("aten."):
        name = name.split(".")[1]
    return name


def conv_category(input_channels: int, weight_shape: Sequence[int]) -> str:
    """"depthwise conv", "1x1 conv" or "kxk conv" for a convolution of ``weight_shape`` (out, in/groups, k...)."""
    groups = input_channels // max(int(weight_shape[1]), 1)
    if groups > 1 and int(weight_shape[1]) == 1:
        return "depthwise conv"
    if all(int(k) == 1 for k in weight_shape[2:]):
        return "1x1 conv"
    return "kxk conv"


def operator_category(
    name: str,
    in_squeeze_excite: bool = False,
    input_shape: Sequence[int] | None = None,
    weight_shape: Sequence[int] | None = None,
) -> str:
    """The category (one of ``CATEGORIES``) of a PyTorch operator.

    Args:
        name: ``aten::conv2d``, ``aten.hardswish_.default`` or a bare name.
        in_squeeze_excite: the operator ran inside a squeeze-excite module.
        input_shape, weight_shape: of a convolution, to tell depthwise, 1x1 and kxk apart.
    """
    if in_squeeze_excite:
        return "squeeze-excite"
    base = operator_name(name)
    bare = base.rstrip("_")  # in-place variants: relu_, hardswish_
    if base in _CONVOLUTIONS:
        if input_shape is None or weight_shape is None or len(weight_shape) < 3:
            return "kxk conv"
        return conv_category(int(input_shape[1]), weight_shape)
    if base in _MATRIX_PRODUCTS:
        return "1x1 conv"
    if bare in _ACTIVATIONS:
        return "activation"
    if "upsample" in base or base.startswith("grid_sampler") or base == "interpolate":
        return "resize"
    if base in _BATCH_NORMS:
        return "batch norm"
    if bare in _COPIES:
        return "copy / layout"
    return "other"


def squeeze_excite_paths(model: nn.Module) -> set[str]:
    """Module paths (as in ``named_modules``) of the squeeze-excite modules of ``model``."""
    return {name for name, module in model.named_modules() if isinstance(module, SQUEEZE_EXCITE_TYPES)}


def inside(path: str, ancestors: set[str]) -> bool:
    """True when module ``path`` is one of ``ancestors`` or lies inside one of them."""
    return any(path == ancestor or path.startswith(ancestor + ".") for ancestor in ancestors)


class ModuleScope:
    """Tracks which module of ``model`` is running, with forward hooks on all its submodules.

    ``path`` is the innermost running module's path (``""`` for the model itself);
    ``on_enter(path)`` / ``on_exit(path)`` are called around each module's forward (the
    benchmark, ``benchmarks/profiles.py``, opens ``torch.profiler.record_function`` ranges with them).
    """

    def __init__(
        self,
        model: nn.Module,
        on_enter: Callable[[str], None] | None = None,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.on_enter, self.on_exit = on_enter, on_exit
        self.stack: list[str] = []
        self._handles: list = []

    @property
    def path(self) -> str:
        return self.stack[-1] if self.stack else ""

    def __enter__(self) -> ModuleScope:
        for name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._enter_hook(name)))
            self._handles.append(module.register_forward_hook(self._exit_hook(name), always_call=True))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.stack.clear()

    def _enter_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args) -> None:
            self.stack.append(name)
            if self.on_enter is not None:
                self.on_enter(name)

        return hook

    def _exit_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args, output) -> None:
            if self.on_exit is not None:
                self.on_exit(name)
            if self.stack and self.stack[-1] == name:
                self.stack.pop()

        return hook


@dataclass(frozen=True)
class OperatorCost:
    """One executed operator: its MACs and memory traffic in bytes (``weight_bytes`` is part of ``bytes_read``)."""

    operator: str
    module: str
    category: str
    macs: int
    bytes_read: int
    bytes_written: int
    weight_bytes: int

    @property
    def memory_bytes(self) -> int:
        return self.bytes_read + self.bytes_written


@dataclass(frozen=True)
class CategoryCost:
    """The operators of one category added up."""

    operators: int = 0
    macs: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class GraphCost:
    """Every operator of one forward pass of a ``batch_size`` x ``in_channels`` x ``input_size`` input."""

    params: int
    batch_size: int
    input_size: tuple[int, int]
    operators: list[OperatorCost] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.operators)

    @property
    def memory_bytes(self) -> int:
        """ShuffleNetV2's memory access cost of the whole pass: bytes read plus bytes written."""
        return sum(op.memory_bytes for op in self.operators)

    @property
    def weight_bytes(self) -> int:
        return sum(op.weight_bytes for op in self.operators)

    def by_category(self) -> dict[str, CategoryCost]:
        """Totals per category, every category of ``CATEGORIES`` present, in that order."""
        totals = {name: [0, 0, 0] for name in CATEGORIES}
        for op in self.operators:
            entry = totals[op.category]
            entry[0] += 1
            entry[1] += op.macs
            entry[2] += op.memory_bytes
        return {name: CategoryCost(*values) for name, values in totals.items()}


def _tensors(values) -> Iterator[torch.Tensor]:
    """The distinct tensors among (nested) arguments or results, each once."""
    seen: set[int] = set()
    pending = [values]
    while pending:  # an operator's arguments: tensors, numbers, and lists, tuples or dicts of them
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            if id(value) not in seen:
                seen.add(id(value))
                yield value
        elif isinstance(value, (list, tuple)):
            pending.extend(reversed(value))
        elif isinstance(value, dict):
            pending.extend(reversed(list(value.values())))


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class _CostMode(TorchDispatchMode):
    """Records every operator that reaches the dispatcher, after the same decomposition as
    ``FlopCounterMode`` (so the MACs agree with ``count_params_and_macs``).

    What is counted as memory traffic, per operator: each distinct tensor argument read once
    (weights, biases, batch-norm statistics, activations) and each returned tensor written once,
    at ``numel * element_size`` bytes. View and alias operators (``view``, ``transpose``,
    ``expand``, ``slice``, ...) move nothing and count 0, as do allocations that write nothing
    (``empty``). An in-place operator (``relu_``) reads its input and writes it back: both count.
    A copy that a view forces (``contiguous`` in a channel shuffle, ``cat``, padding) is an
    operator of its own and counts. This is eager PyTorch's unfused graph; runtimes that fuse
    batch norm and activations into convolutions move fewer bytes.
    """

    def __init__(self, scope: ModuleScope, weight_ids: set[int], squeeze_excite: set[str]) -> None:
        super().__init__()
        self.scope = scope
        self.weight_ids = weight_ids
        self.squeeze_excite = squeeze_excite
        self.flop_registry = FlopCounterMode(display=False).flop_registry
        self.operators: list[OperatorCost] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # as FlopCounterMode: composite operators are split into the ones eager PyTorch runs
        with self:
            result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        name = operator_name(str(func))
        packet = func._overloadpacket
        flops = self.flop_registry[packet](*args, **kwargs, out_val=out) if packet in self.flop_registry else 0
        if func.is_view or name in _ALLOCATIONS or name in ("alias", "detach", "lift_fresh"):
            read = written = weights = 0
        else:
            inputs = list(_tensors((args, kwargs)))
            read = sum(_nbytes(t) for t in inputs)
            weights = sum(_nbytes(t) for t in inputs if id(t) in self.weight_ids)
            written = sum(_nbytes(t) for t in _tensors(out))
        path = self.scope.path
        input_shape = weight_shape = None
        if name in _CONVOLUTIONS and len(args) >= 2:
            input_shape, weight_shape = args[0].shape, args[1].shape
        category = operator_category(name, inside(path, self.squeeze_excite), input_shape, weight_shape)
        self.operators.append(OperatorCost(str(func), path, category, int(flops) // 2, read, written, weights))


def count_costs(
    model: nn.Module, input_size: tuple[int, int], batch_size: int = 1, in_channels: int = 3
) -> GraphCost:
    """Every operator of one eval-mode forward pass, with MACs, bytes read and written and a category.

    Works on the meta device (shapes only). The model's training mode is restored afterwards.
    See ``_CostMode`` for exactly which bytes count.
    """
    parameter = next(model.parameters(), torch.zeros(()))  # a parameter-free model runs on the CPU in fp32
    x = torch.zeros(batch_size, in_channels, *input_size, device=parameter.device, dtype=parameter.dtype)
    weight_ids = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    was_training = model.training
    model.eval()
    try:
        with ModuleScope(model) as scope, torch.no_grad():
            mode = _CostMode(scope, weight_ids, squeeze_excite_paths(model))
            with mode:
                model(x)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return GraphCost(params, batch_size, (int(input_size[0]), int(input_size[1])), mode.operators)


def count_params_and_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> tuple[int, int]:
    """(parameters, MACs) of one eval-mode forward pass of a batch of one ``input_size`` image.

    MACs are ``FlopCounterMode``'s FLOPs halved (it counts a multiply-add as 2 FLOPs); like the
    papers' MAdds they cover convolutions and matrix products only. A model built on the meta
    device (``with torch.device("meta"): ...``) is counted without computing anything.
    """
    parameter = next(model.parameters())
    x = torch.zeros(1, in_channels, *input_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2
