"""Reproducible training order and augmentation: each depends on (seed, epoch, index) only.

A resumed run therefore sees exactly the batches an uninterrupted run would, whatever the
number of loader workers, because nothing is drawn from process-wide random state. A run
resumed in the middle of an epoch continues the epoch's order where the checkpoint left it
(:meth:`EpochShuffleSampler.start_at`), rather than replaying the epoch's first batches.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler


class EpochShuffleSampler(DistributedSampler):
    """A fresh permutation per epoch from a generator seeded with (seed, epoch), shared out among processes.

    Each index is tagged with its epoch (``epoch * len + index``) so that ``SeededAugmentation``
    can seed the sample's augmentation without sharing state with the loader workers.

    Under data-parallel training every process draws the same permutation and takes every
    ``num_replicas``-th sample from ``rank`` on, as ``DistributedSampler`` does; the last
    ``length % num_replicas`` samples of the permutation wait for another epoch, so that every
    process runs the same number of batches. The class derives from ``DistributedSampler`` so
    that Lightning uses it as it is: Lightning would otherwise wrap it in its own distributed
    sampler, which materialises the epoch's order once per epoch and cannot start mid-epoch.
    The position of a resumed epoch (:meth:`start_at`) counts samples of the whole order, all
    processes together, which is what makes it independent of the rank.

    ``len()`` is the samples of a whole epoch for this process, so the loader's length (which
    Lightning counts the epoch's batches against) is unchanged by a resume.

    Args:
        length: size of the data set.
        seed: base seed.
        epoch_source: returns the current epoch (the data module passes the trainer's
            ``current_epoch``: Lightning's ``set_epoch`` calls count differently after a resume);
            when absent or returning ``None``, ``set_epoch`` or a count of passes is used.
        num_replicas: number of processes sharing the data set (1 without data parallelism).
        rank: this process's index among them.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        epoch_source: Callable[[], int | None] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler.__init__ is not called: it needs a data set and an initialised
        # process group, where this sampler needs neither (the attributes it sets are set here)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be within 0..num_replicas-1 and num_replicas >= 1, got rank {rank} of {num_replicas}")
        self.length = length
        self.seed = seed
        self.epoch_source = epoch_source
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = True
        self.drop_last = True
        self.num_samples = length // num_replicas
        self.total_size = self.num_samples * num_replicas
        self.epoch = 0
        self._start: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def start_at(self, epoch: int, position: int) -> None:
        """Make the next pass over ``epoch`` skip its first ``position`` samples (already trained on).

        ``position`` counts the samples of every process. Passes over other epochs are
        unaffected; the skip holds until a pass over another epoch begins, so iterating the
        resumed epoch twice yields the same samples twice.
        """
        if not 0 <= position <= self.length:
            raise ValueError(f"position must be within the epoch's 0..{self.length} samples, got {position}")
        self._start = (int(epoch), int(position))

    def order(self, epoch: int) -> list[int]:
        """The whole tagged order of ``epoch``, before it is shared out among processes."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return (epoch * self.length + torch.randperm(self.length, generator=generator)).tolist()

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch_source() if self.epoch_source is not None else None
        epoch = self.epoch if epoch is None else epoch
        self.epoch = epoch + 1
        skip = 0
        if self._start is not None:
            if self._start[0] == epoch:
                skip = self._start[1]
            else:
                self._start = None
        # the same count for every process, even where a resume under another number of processes
        # left a position that is not a multiple of it
        rounds = (self.length - skip) // self.num_replicas
        remaining = self.order(epoch)[skip : skip + rounds * self.num_replicas]
        return iter(remaining[self.rank :: self.num_replicas])


class SeededAugmentation(Dataset):
    """Runs ``dataset[index]`` with its albumentations transform seeded from (seed, epoch, index)."""

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, tagged_index: int) -> dict:
        epoch, index = divmod(int(tagged_index), len(self.dataset))
        sample_seed = (self.seed * 1_000_003 + epoch) * 10_000_019 + index
        self.dataset.transform.set_random_seed(sample_seed % 2**32)
        return self.dataset[index]


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(0)


def worker_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: interrupts are the main process's to handle.

    A terminal's Ctrl-C, and a cluster scheduler's SIGTERM, reach every process of the group. A
    worker ignores Ctrl-C, and leaves on SIGTERM with exit status 0: killed by the signal, it
    would make torch raise an error in the main process at any moment (its SIGCHLD handler),
    in the middle of a step or of the checkpoint the main process is saving. The main process
    finishes its step, saves ``last.ckpt`` and shuts its workers down itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_quietly)
