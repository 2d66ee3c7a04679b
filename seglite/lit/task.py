"""The Lightning system that trains and evaluates a ``SegmentationModel``.

The model is injected (LightningCLI picks backbone and head from the config); losses,
metrics, optimisation and logging live here, never in the model.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.optim.lr_scheduler import LambdaLR

import seglite
from seglite.checkpoints import CheckpointError, describe_checkpoint_model, without_initial_weights
from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.data.statistics import CLASS_WEIGHT_METHODS, ClassWeightMethod, class_table, class_weights
from seglite.errors import ConfigurationError
from seglite.lit.lightning_private import cli_is_instantiating
from seglite.lit.losses import SegmentationLoss, check_class_weighted
from seglite.lit.metrics import confusion_matrix_metric
from seglite.lit.optim import poly_warmup_factor, split_decay_parameters
from seglite.metrics import scores_from_confusion
from seglite.models.heads.aspp import pooled_batch_norms
from seglite.models.segmentor import SegmentationModel
from seglite.sliding import InferenceMode, predict_probabilities
from seglite.visualization import colorize

CLASS_WEIGHTS_KEY = "seglite_class_weights"
"""The checkpoint entry of the class weights in use: ``{"method": "enet" | "median_frequency" | "list", "weights": [...]}``."""


def _check_class_weights(value: object, num_classes: int) -> tuple[ClassWeightMethod | None, list[float] | None]:
    """``class_weights`` as (method to compute them with, or the weights given), a ``ValueError`` naming it otherwise."""
    if value is None:
        return None, None
    if isinstance(value, str):
        if value not in CLASS_WEIGHT_METHODS:
            raise ValueError(f"class_weights must be one of {CLASS_WEIGHT_METHODS}, a list of numbers or null, got {value!r}")
        return value, None  # type: ignore[return-value]
    try:
        weights = [float(number) for number in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"class_weights must be one of {CLASS_WEIGHT_METHODS}, a list of numbers or null, got {value!r}") from None
    if len(weights) != num_classes:
        raise ValueError(f"class_weights has {len(weights)} numbers but the model predicts {num_classes} classes")
    if not all(math.isfinite(number) and number >= 0 for number in weights) or not any(weights):
        raise ValueError(f"class_weights must be finite numbers >= 0, not all 0, got {list(value)}")  # type: ignore[call-overload]
    return None, weights


class SegmentationTask(pl.LightningModule):
    """Training, validation, test and prediction of a semantic segmentation model.

    Args:
        model: the network (e.g. ``seglite.models.LRASPP``); ``forward_with_aux`` gives
            main and auxiliary logits at input size.
        losses: loss name -> weight, names from ``ce``, ``ohem``, ``dice``, ``lovasz``, ``focal``.
        class_weights: per-class weights of the cross-entropy losses (``ce``, ``ohem``): a list, one
            per class, or computed from the training split's labels when training starts:
            ``enet`` (``1 / ln(1.02 + class share)``, ENet paper section 5.2) or ``median_frequency``
            (SegNet paper section 4.1); see ``seglite.data.statistics.class_weights``. Computed
            weights are logged and stored in the checkpoint: a resumed run, ``test`` and the
            Predictor use them as stored, never counting again.
        aux_weight: weight of the auxiliary head's loss (same losses as the main output).
        optimizer: SGD with Nesterov-free momentum (the DeepLab/torchvision recipe) or AdamW.
        weight_decay: applied to conv/linear kernels only; norms, biases and depthwise
            kernels are exempt (MobileNetV1 paper, section 3.2).
        poly_power: the poly schedule ``(1 - step / total) ** power``, stepped per iteration.
        warmup_steps: linear warm-up iterations from ``warmup_ratio * lr``.
        class_names, palette: for logs and tables; linked from the data module by the CLI.
        log_images: number of validation images logged as image | truth | prediction.
        eval_mode, eval_crop_size, eval_stride, eval_flip, eval_scales: how validation and
            test images are run (see ``seglite.sliding.predict_probabilities``).
        channels_last: run the model in NHWC memory format: on 2 CPU cores LR-ASPP
            MobileNetV3-Large trains a third faster (464 -> 308 ms per step, batch 8 at 256x256;
            ``python benchmarks/training.py``, figures in the README's Training section).
    """

    def __init__(
        self,
        model: SegmentationModel,
        losses: dict[str, float] | None = None,
        class_weights: ClassWeightMethod | list[float] | None = None,
        ohem_threshold: float = 0.7,
        ohem_min_kept: int = 100_000,
        aux_weight: float = 0.4,
        ignore_index: int = 255,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        poly_power: float = 0.9,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-3,
        class_names: list[str] | None = None,
        palette: list[list[int]] | None = None,
        log_images: int = 4,
        eval_mode: InferenceMode = "whole",
        eval_crop_size: tuple[int, int] = (1024, 1024),
        eval_stride: tuple[int, int] = (768, 768),
        eval_flip: bool = False,
        eval_scales: list[float] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
        if eval_mode not in ("whole", "slide"):
            raise ValueError(f"eval_mode must be 'whole' or 'slide', got {eval_mode!r}")
        if class_names is not None and len(class_names) != model.num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} names but the model predicts {model.num_classes} classes"
            )
        # Under LightningCLI the hyperparameters are the config (model included as class_path +
        # init_args), so load_from_checkpoint can rebuild the model; elsewhere the module itself
        # must not be pickled into hparams.
        self.save_hyperparameters(ignore=None if cli_is_instantiating() else ["model"])
        self.model = model
        self.num_classes = model.num_classes
        self.class_names = class_names or [str(index) for index in range(self.num_classes)]
        self.palette = palette
        losses = losses or {"ce": 1.0}
        self.class_weight_method, fixed_weights = _check_class_weights(class_weights, self.num_classes)
        if self.class_weight_method is not None:
            check_class_weighted(losses)  # now, not after counting the data
        self.loss = SegmentationLoss(losses, ignore_index, fixed_weights, ohem_threshold, ohem_min_kept)
        self.val_confusion = confusion_matrix_metric(self.num_classes, ignore_index)
        self.test_confusion = confusion_matrix_metric(self.num_classes, ignore_index)
        self.predict_options = {
            "mode": eval_mode, "crop_size": tuple(eval_crop_size), "stride": tuple(eval_stride),
            "flip": eval_flip, "scales": tuple(eval_scales or (1.0,)),
        }
        self.last_scores = {}
        self.checkpoint_step: int | None = None
        """The training step of the checkpoint the weights were loaded from (``None``: not loaded)."""

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["seglite_version"] = seglite.__version__
        # the checkpoint holds the trained weights: rebuilding its model (load_from_checkpoint too)
        # must not read the ImageNet file training started from, which may be gone
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict) and isinstance(hparams.get("model"), dict):
            hparams["model"] = without_initial_weights(hparams["model"])
        weights = self.loss.class_weights
        if weights is not None:
            checkpoint[CLASS_WEIGHTS_KEY] = {
                "method": self.class_weight_method or "list", "weights": [float(value) for value in weights.tolist()],
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore computed class weights; refuse a checkpoint of another model before its weights are copied."""
        step = checkpoint.get("global_step")
        self.checkpoint_step = int(step) if isinstance(step, int) else None
        self._restore_class_weights(checkpoint)
        # checkpoints of earlier versions held a class-weight list (also in their hyperparameters) in the state dict
        for key in [key for key in checkpoint.get("state_dict", {}) if key.startswith("loss.terms.")]:
            del checkpoint["state_dict"][key]
        ours = self.state_dict()
        theirs = checkpoint.get("state_dict", {})
        differ = [key for key in ours if key in theirs and tuple(theirs[key].shape) != tuple(ours[key].shape)]
        missing = [key for key in ours if key not in theirs]
        if not differ and not missing:
            return
        try:
            path = self.trainer.ckpt_path
        except RuntimeError:  # not attached to a trainer (load_from_checkpoint)
            path = None
        source = f"checkpoint {path}" if path else "the checkpoint"
        held = describe_checkpoint_model(checkpoint)
        names = checkpoint.get("hyper_parameters", {}).get("class_names")
        if names is not None and len(names) != self.num_classes:
            raise CheckpointError(
                f"{source} holds {held}, but this configuration builds a model for {self.num_classes} classes "
                "(the data module's): use it with the data configuration it was trained with"
            )
        first = differ[0] if differ else missing[0]
        detail = (
            f"{first} is {tuple(theirs[first].shape)} there and {tuple(ours[first].shape)} here" if differ
            else f"{first} is missing there"
        )
        raise CheckpointError(
            f"{source} holds {held}, which does not fit the model this configuration builds "
            f"({len(differ)} tensors differ in shape, {len(missing)} are missing; {detail})"
        )

    def _restore_class_weights(self, checkpoint: dict) -> None:
        stored = checkpoint.get(CLASS_WEIGHTS_KEY)
        if self.class_weight_method is None or not isinstance(stored, dict):
            return
        if stored.get("method") != self.class_weight_method:
            rank_zero_warn(
                f"the checkpoint's class weights are {stored.get('method')!r}, this run's class_weights is "
                f"{self.class_weight_method!r}: they are computed again when training starts"
            )
            return
        weights = list(stored["weights"])
        if len(weights) != self.num_classes:
            return  # another model: the check of the state dict below says so
        self.loss.set_class_weights(torch.tensor(weights, dtype=torch.float32, device=self.device))
        rank_zero_info(f"class weights ({self.class_weight_method}) restored from the checkpoint")

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        # here, not in setup: the strategy has converted the model to SyncBatchNorm by now
        self._check_batch_size_for_pooled_norms()

    def _check_batch_size_for_pooled_norms(self) -> None:
        """Refuse, before the first step, a training batch too small for BatchNorm over a 1x1 pooled map.

        Torch's own error comes mid-step, 150 lines deep. Keeping the BatchNorm (rather than a
        batch-1 fallback) keeps the architecture and weights of torchvision's and the papers' ASPP.
        """
        batch_size = getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
        norms = pooled_batch_norms(self.model)
        if not isinstance(batch_size, int) or not norms:
            return  # a loader of the user's own: torch's error at the first step
        synced = all(isinstance(norm, torch.nn.SyncBatchNorm) for norm in norms.values())
        if batch_size * (self.trainer.world_size if synced else 1) >= 2:
            return
        name = next(iter(norms))
        head = type(self.model.get_submodule(name.split(".")[0])).__name__
        raise ConfigurationError(
            f"--data.init_args.batch_size is {batch_size}, but the image pooling of {head} ({name}) normalises a 1x1 "
            "pooled map with BatchNorm, which needs more than one image per training batch; use batch_size 2 or more"
        )

    def on_train_start(self) -> None:
        # not on_fit_start: strategies that restore a checkpoint after setup (DeepSpeed) call that before the restore
        if self.class_weight_method is not None and self.loss.class_weights is None:
            self._compute_class_weights(self.class_weight_method)

    def _compute_class_weights(self, method: ClassWeightMethod) -> None:
        """Count the training split's labels (on rank 0, shared with the other processes) and weigh the losses."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if not callable(getattr(datamodule, "class_counts", None)):
            raise ConfigurationError(
                f"class_weights: {method} computes the weights from the training labels and needs a seglite data module "
                f"(seglite.data.FolderDataModule, CityscapesDataModule), which counts them; this run's data is "
                f"{type(datamodule).__name__ if datamodule is not None else 'not a data module'}. "
                "Give class_weights as a list of numbers instead"
            )
        counts = None
        if self.trainer.is_global_zero:
            split = datamodule.splits["train"] if isinstance(getattr(datamodule, "splits", None), dict) else "train"
            rank_zero_info(f"class_weights: {method}: counting the class pixels of the training split {split!r}")
            counts = datamodule.class_counts("train")
        counts = self.trainer.strategy.broadcast(counts)
        weights = class_weights(counts, method)
        self.loss.set_class_weights(torch.tensor(weights, dtype=torch.float32, device=self.device))
        rank_zero_info(
            f"class weights ({method}) from {counts.num_images} training images, {counts.labelled:,} labelled pixels:\n"
            + class_table(counts, self.class_names, {method: weights})
        )
        absent = [self.class_names[index] for index in counts.absent]
        if absent:
            rank_zero_warn(
                f"class_weights: {method}: no training pixel of {', '.join(absent)}; weight 0 (it cannot be learnt from "
                "this training split)"
            )

    def _images(self, batch: dict) -> torch.Tensor:
        images = batch["image"]
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, masks = self._images(batch), batch["mask"]
        logits, aux_logits = self.model.forward_with_aux(images)
        loss = self.loss(logits, masks)
        if aux_logits is not None and self.hparams.aux_weight > 0:
            aux_loss = self.loss(aux_logits, masks)
            self.log("train/aux_loss", aux_loss, batch_size=len(images))
            loss = loss + self.hparams.aux_weight * aux_loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}); stopping. Lower the learning rate, add warm-up, or check the data"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def configure_optimizers(self):
        decay, no_decay = split_decay_parameters(self.model)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=self.hparams.lr, momentum=self.hparams.momentum)
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        schedule = functools.partial(
            poly_warmup_factor,
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
            power=self.hparams.poly_power,
            warmup_steps=self.hparams.warmup_steps,
            warmup_ratio=self.hparams.warmup_ratio,
        )
        scheduler = LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict, confusion) -> torch.Tensor:
        probabilities = predict_probabilities(self.model, self._images(batch), **self.predict_options)
        predictions = probabilities.argmax(dim=1)
        confusion.update(predictions, batch["mask"])
        return predictions

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        predictions = self._evaluate(batch, self.val_confusion)
        if batch_idx == 0 and not self.trainer.sanity_checking:
            self._log_overlays(batch, predictions)

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # returned for callbacks' on_test_batch_end (e.g. the Cityscapes export); Lightning keeps no copy
        return self._evaluate(batch, self.test_confusion)

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val", self.val_confusion)

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test", self.test_confusion)

    def _finish_evaluation(self, stage: str, confusion) -> None:
        scores = scores_from_confusion(confusion.compute())  # summed over DDP processes
        confusion.reset()
        self.log(f"{stage}/mIoU", scores.miou, sync_dist=False, prog_bar=stage == "val")
        self.log(f"{stage}/pixel_accuracy", scores.pixel_accuracy, sync_dist=False)
        self.log(f"{stage}/mean_accuracy", scores.mean_accuracy, sync_dist=False)
        for name, value in zip(self.class_names, scores.iou.tolist()):
            if value == value:  # NaN: class absent from labels and predictions
                self.log(f"{stage}/IoU/{name}", value, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.last_scores[stage] = scores
            rank_zero_info(f"\n{self._results_heading(stage)}:\n{scores.table(self.class_names)}")

    def _results_heading(self, stage: str) -> str:
        """``val results (step 800)``: the data split evaluated, and the step the weights come from.

        Outside ``fit`` (``trainer.test`` on a checkpoint) the trainer's step is 0: the step is the
        checkpoint's; the split is the data module's for the stage (``test`` may evaluate ``val``).
        """
        splits = getattr(getattr(self.trainer, "datamodule", None), "splits", None)
        split = splits.get(stage, stage) if isinstance(splits, dict) else stage
        if self.trainer.state.fn != TrainerFn.FITTING and self.checkpoint_step is not None:
            return f"{split} results (checkpoint step {self.checkpoint_step})"
        return f"{split} results (step {self.global_step})"

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        probabilities = predict_probabilities(self.model, self._images(batch), **self.predict_options)
        return {"mask": probabilities.argmax(dim=1).to(torch.uint8), "path": batch.get("path")}

    # ---------------------------------------------------------------- logging
    def _log_overlays(self, batch: dict, predictions: torch.Tensor) -> None:
        count = min(self.hparams.log_images, len(predictions))
        loggers = [logger for logger in self.loggers if isinstance(logger, TensorBoardLogger)]
        if count == 0 or not loggers or self.palette is None or self.global_rank != 0:
            return
        mean = torch.tensor(IMAGENET_MEAN, device=batch["image"].device).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=batch["image"].device).view(3, 1, 1)
        for index in range(count):
            image = ((batch["image"][index] * std + mean).clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
            truth = colorize(batch["mask"][index].cpu().numpy(), self.palette)
            predicted = colorize(predictions[index].cpu().numpy(), self.palette)
            panel = np.concatenate([image, truth, predicted], axis=1)
            for logger in loggers:
                logger.experiment.add_image(
                    f"val/overlay_{index}", panel, self.global_step, dataformats="HWC"
                )
