"""Reproducible training order and augmentation: each depends on (seed, epoch, index) only.

A resumed run therefore sees exactly the batches an uninterrupted run would, whatever the
number of loader workers, because nothing is drawn from process-wide random state.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import Dataset, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation per epoch from a generator seeded with (seed, epoch).

    Each index is tagged with its epoch (``epoch * len + index``) so that ``SeededAugmentation``
    can seed the sample's augmentation without sharing state with the loader workers.

    Args:
        length: size of the data set.
        seed: base seed.
        epoch_source: returns the current epoch (the data module passes the trainer's
            ``current_epoch``: Lightning's ``set_epoch`` calls count differently after a resume);
            when absent or returning ``None``, ``set_epoch`` or a count of passes is used.
    """

    def __init__(self, length: int, seed: int = 0, epoch_source: Callable[[], int | None] | None = None) -> None:
        self.length = length
        self.seed = seed
        self.epoch_source = epoch_source
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch_source() if self.epoch_source is not None else None
        epoch = self.epoch if epoch is None else epoch
        self.epoch = epoch + 1
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        offset = epoch * self.length
        return iter((offset + torch.randperm(self.length, generator=generator)).tolist())


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
