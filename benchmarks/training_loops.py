"""The two training loops ``benchmarks/training.py`` times: the Lightning task and a bare PyTorch loop.

A loop's unit of timing is a step inside a run that only its trainer drives (``trainer.fit`` does
not hand out single steps), so each run reads its own step times with one :class:`StepClock` -
the time between consecutive step ends, fetching included - and the runs of the two loops are the
rounds of ``benchmarks.harness.interleaved``.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.harness import interleaved
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


WARMUP_STEPS = 2
"""Steps of every run left out of its times (the first builds kernels and allocates memory)."""


class StepClock:
    """Times between consecutive step ends, the device synchronised first; the warm-up steps' left out."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ends: list[float] = []

    def tick(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ends.append(time.perf_counter())

    @property
    def times(self) -> list[float]:
        return [end - start for start, end in zip(self.ends[WARMUP_STEPS - 1 :], self.ends[WARMUP_STEPS:])]


class StepTimer(pl.Callback):
    """The :class:`StepClock` of a Lightning run: a tick at every batch end."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.clock.tick()


def _task(args: argparse.Namespace) -> SegmentationTask:
    task = SegmentationTask(build_preset(args.preset), channels_last=args.channels_last)
    if args.compile:
        # training calls forward_with_aux, not forward: compile that (torch.compile(model) would not)
        task.model.forward_with_aux = torch.compile(task.model.forward_with_aux)
    return task


def lightning_step_times(args: argparse.Namespace, loader: DataLoader, device: torch.device) -> list[float]:
    task = _task(args)
    clock = StepClock(device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    devices = [device.index or 0] if device.type == "cuda" else 1
    precision = "bf16-mixed" if args.precision == "bf16-mixed" else "32-true"
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, precision=precision,
        max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=True,
        enable_model_summary=False, callbacks=[StepTimer(clock)], limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(task, loader)
    return clock.times


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
    clock = StepClock(device)
    iterator = iter(loader)
    for _ in range(args.steps):
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
        clock.tick()
    return clock.times


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
    # the loops alternate, so drifting machine load hits both alike
    timings = interleaved([lambda loop=loop: loops[loop](args, loader, device) for loop in args.loops], 0, args.repeats,
                          settle=0)  # fmt: skip
    return {loop: timing.times for loop, timing in zip(args.loops, timings)}
