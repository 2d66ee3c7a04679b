"""Training throughput of the Lightning system against a bare PyTorch loop on the same model and batch.

Both run the same ``SegmentationTask`` pieces (model, loss, optimiser groups, poly schedule) on the
same in-memory batches, alternately in one process, so Lightning's own overhead is what differs.
The median step time after warm-up is reported.

    python tools/benchmark_training.py --batch-size 8 --crop 256 256 --steps 12 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from seglite.lit.optim import poly_warmup_factor, split_decay_parameters
from seglite.lit.task import SegmentationTask
from seglite.models import build_preset


class RandomBatches(Dataset):
    """Fixed random images and masks, so data loading costs nothing in either loop."""

    def __init__(self, count: int, crop: tuple[int, int], num_classes: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(count, 3, *crop, generator=generator)
        self.masks = torch.randint(0, num_classes, (count, *crop), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "mask": self.masks[index]}


class StepTimer(pl.Callback):
    """Time between consecutive batch ends: everything Lightning does per step, fetching included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def lightning_step_times(preset: str, loader: DataLoader, steps: int, channels_last: bool) -> list[float]:
    task = SegmentationTask(build_preset(preset), channels_last=channels_last)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=True, enable_model_summary=False, callbacks=[timer], limit_val_batches=0,
    )
    trainer.fit(task, loader)
    return timer.times


def bare_step_times(preset: str, loader: DataLoader, steps: int, channels_last: bool) -> list[float]:
    task = SegmentationTask(build_preset(preset))  # the same model, loss and optimiser settings
    task.train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    task.model.to(memory_format=memory_format)
    decay, no_decay = split_decay_parameters(task.model)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": task.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=task.hparams.lr, momentum=task.hparams.momentum,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: poly_warmup_factor(step, steps))
    times = []
    iterator = iter(loader)
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(iterator)
        logits, _ = task.model.forward_with_aux(batch["image"].contiguous(memory_format=memory_format))
        loss = task.loss(logits, batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss.item()  # Lightning reads the loss for its progress bar too
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=12, help="steps per run; the first 2 are warm-up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format in both loops")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    dataset = RandomBatches(args.batch_size * args.steps, tuple(args.crop), 19)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, drop_last=True)
    lightning, bare = [], []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        lightning += lightning_step_times(args.preset, loader, args.steps, args.channels_last)[1:]  # intervals
        bare += bare_step_times(args.preset, loader, args.steps, args.channels_last)[2:]
    lightning_median, bare_median = statistics.median(lightning), statistics.median(bare)
    print(f"\n{args.preset}, batch {args.batch_size}, crop {args.crop[0]}x{args.crop[1]}, {args.threads} threads, "
          f"{'channels_last, ' if args.channels_last else ''}median of {len(bare)} steps after warm-up")
    print(f"bare PyTorch loop : {bare_median * 1000:8.1f} ms/step  {args.batch_size / bare_median:6.2f} images/s")
    print(f"Lightning (task)  : {lightning_median * 1000:8.1f} ms/step  {args.batch_size / lightning_median:6.2f} images/s")
    print(f"Lightning overhead: {100 * (lightning_median / bare_median - 1):+.1f}%")


if __name__ == "__main__":
    main()
