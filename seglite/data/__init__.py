"""seglite data: Cityscapes and folder data sets, transforms, DataModules, the synthetic demo set.

Nothing here knows about models: the data modules expose ``num_classes``, ``class_names`` and
``palette`` for the model and the logs to read.
"""

from .cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_IDS,
    CITYSCAPES_PALETTE,
    CityscapesDataset,
    labelids_to_trainids,
    trainids_to_labelids,
)
from .datamodule import CityscapesDataModule, FolderDataModule, SegmentationDataModule
from .folder import FolderDataset
from .io import IGNORE_INDEX
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    normalize_image,
    train_transform,
)

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_IDS",
    "CITYSCAPES_PALETTE",
    "CityscapesDataModule",
    "CityscapesDataset",
    "FolderDataModule",
    "FolderDataset",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegmentationDataModule",
    "eval_transform",
    "labelids_to_trainids",
    "normalize_image",
    "train_transform",
    "trainids_to_labelids",
]
