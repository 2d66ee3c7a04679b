"""Shared fixtures: a tiny synthetic Cityscapes-layout data set written by the real generator."""

from pathlib import Path

import pytest

from seglite.data.synthetic import make_demo_dataset


@pytest.fixture(scope="session")
def tiny_cityscapes(tmp_path_factory) -> Path:
    """8 train / 4 val / 2 test images of 64x128 in the Cityscapes layout."""
    root = tmp_path_factory.mktemp("tiny_cityscapes")
    return make_demo_dataset(root, num_train=8, num_val=4, num_test=2, size=(64, 128), seed=1, video=False)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run tiny inputs, which gain nothing from intra-op threads; on a busy machine
    spinning OpenMP threads cost seconds per test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
