"""The two training loops ``tools/benchmark_training.py`` times: the Lightning task and a bare PyTorch loop."""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from seglite.lit.optim import poly_warmup_factor, split_decay_parameters
from seglite.lit.task import SegmentationTask
from seglite.models import build_preset

POOL = 2
"""Distinct batches held in memory; the loaders cycle through them (768x768 batches of 16 are large)."""


class RandomBatches(Dataset):
    """Random images and masks, fixed and in memory, so data loading costs (almost) nothing in either loop."""

    def __init__(self, count: int, pool: int, crop: tuple[int, int], num_classes: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.count = count
        self.images = torch.randn(pool, 3, *crop, generator=generator)
        self.masks = torch.randint(0, num_classes, (pool, *crop), generator=generator)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index % len(self.images)], "mask": self.masks[index % len(self.masks)]}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(pl.Callback):
    """Time between consecutive batch ends: everything Lightning does per step, fetching included."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []
        self.last: float | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        _synchronize(self.device)
        now = time.perf_counter()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def _task(args: argparse.Namespace) -> SegmentationTask:
    task = SegmentationTask(build_preset(args.preset), channels_last=args.channels_last)
    if args.compile:
        # training calls forward_with_aux, not forward: compile that (torch.compile(model) would not)
        task.model.forward_with_aux = torch.compile(task.model.forward_with_aux)
    return task


def lightning_step_times(args: argparse.Namespace, loader: DataLoader, device: torch.device) -> list[float]:
    task = _task(args)
    timer = StepTimer(device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    devices = [device.index or 0] if device.type == "cuda" else 1
    precision = "bf16-mixed" if args.precision == "bf16-mixed" else "32-true"
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, precision=precision,
        max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=True,
        enable_model_summary=False, callbacks=[timer], limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(task, loader)
    return timer.times[1:]  # intervals; the first spans the warm-up step


def bare_step_times(args: argparse.Namespace, loader: DataLoader, device: torch.device) -> list[float]:
    task = _task(args)  # the same model, loss and optimiser settings
    task.train().to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    task.model.to(memory_format=memory_format)
    decay, no_decay = split_decay_parameters(task.model)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": task.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=task.hparams.lr, momentum=task.hparams.momentum,
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: poly_warmup_factor(step, args.steps))
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16-mixed" else nullcontext()
    )
    times = []
    iterator = iter(loader)
    for _ in range(args.steps):
        start = time.perf_counter()
        batch = next(iterator)
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        masks = batch["mask"].to(device, non_blocking=True)
        with autocast:
            logits, _ = task.model.forward_with_aux(images)
            loss = task.loss(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss.item()  # Lightning reads the loss for its progress bar too; on CUDA this waits for the step
        times.append(time.perf_counter() - start)
    return times[2:]


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    """Step times after warm-up of each loop in ``args.loops``, the loops alternating ``args.repeats`` times."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pl.seed_everything(0, verbose=False)
    dataset = RandomBatches(args.batch_size * args.steps, POOL * args.batch_size, args.crop, 19)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, drop_last=True,
                        pin_memory=device.type == "cuda")  # fmt: skip
    loops = {"bare": bare_step_times, "lightning": lightning_step_times}
    results: dict[str, list[float]] = {loop: [] for loop in args.loops}
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        for loop in args.loops:
            results[loop] += loops[loop](args, loader, device)
    return results
