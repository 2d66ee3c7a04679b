"""A Lightning callback logging dead depthwise kernels and never-activated ReLU channels.

The training-time view of ``seglite.models.diagnostics`` (``tools/inspect_model.py`` is the
checkpoint-time one): after every validation it logs, as TensorBoard scalars,

- ``diagnostics/dead_depthwise_kernels``: the share of depthwise kernels of the model whose L2
  norm is below ``threshold``;
- ``diagnostics/never_active_channels``: the share of ReLU/ReLU6 channels never positive on
  any validation image of that validation run (all processes together under DDP);

and with ``per_layer=True`` the same per layer (``diagnostics/dead/<layer>``,
``diagnostics/never_active/<layer>``). The sanity-check validation is not logged.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from seglite.checks import check_positive_number
from seglite.models.diagnostics import (
    DEAD_KERNEL_THRESHOLD,
    ActivationRecorder,
    LayerCount,
    dead_depthwise_kernels,
    total_share,
)


class ModelDiagnostics(pl.Callback):
    """Log the shares of dead depthwise kernels and of never-activated ReLU channels after each validation.

    Args:
        threshold: a depthwise kernel with an L2 norm below it is dead.
        activations: record ReLU/ReLU6 outputs on validation batches (forward hooks; one
            ``any`` reduction per rectifier and batch).
        per_layer: also log one scalar per layer.
    """

    def __init__(self, threshold: float = DEAD_KERNEL_THRESHOLD, activations: bool = True, per_layer: bool = False) -> None:
        super().__init__()
        self.threshold = check_positive_number("threshold", threshold, type(self).__name__)
        self.activations = activations
        self.per_layer = per_layer
        self._recorder: ActivationRecorder | None = None

    @staticmethod
    def _model(pl_module: pl.LightningModule) -> torch.nn.Module:
        return getattr(pl_module, "model", pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.activations and not trainer.sanity_checking:
            self._recorder = ActivationRecorder(self._model(pl_module)).attach()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.detach()
        if trainer.sanity_checking:
            return
        dead = dead_depthwise_kernels(self._model(pl_module), self.threshold)
        metrics = {"diagnostics/dead_depthwise_kernels": total_share(dead)}
        if self.per_layer:
            metrics.update({f"diagnostics/dead/{item.layer}": item.share for item in dead})
        if recorder is not None and recorder.active:
            silent = self._gather(recorder, pl_module)
            metrics["diagnostics/never_active_channels"] = total_share(silent)
            if self.per_layer:
                metrics.update({f"diagnostics/never_active/{item.layer}": item.share for item in silent})
        for name, value in metrics.items():
            # the same value on every process (weights are replicated, activations gathered above)
            pl_module.log(name, value, on_epoch=True, sync_dist=False, rank_zero_only=True)

    @staticmethod
    def _gather(recorder: ActivationRecorder, pl_module: pl.LightningModule) -> list[LayerCount]:
        """Never-active counts over the validation images of every process: a channel active anywhere is active."""
        names = list(recorder.active)
        flags = torch.cat([recorder.active[name] for name in names]).to(torch.uint8)
        flags = pl_module.all_gather(flags)
        if flags.dim() == 2:  # (processes, channels) under DDP
            flags = flags.amax(dim=0)
        counts, start = [], 0
        for name in names:
            size = recorder.active[name].numel()
            active = flags[start : start + size].bool()
            counts.append(LayerCount(name, size, int((~active).sum())))
            start += size
        return counts

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._recorder is not None:
            self._recorder.detach()
            self._recorder = None
