"""seglite data: Cityscapes, CamVid and folder data sets, transforms, DataModules, the synthetic demo set.

Nothing here knows about models: the data modules expose ``num_classes``, ``class_names`` and
``palette`` for the model and the logs to read.

Names are imported from their submodules on first use, so ``from seglite.data import
CITYSCAPES_PALETTE`` does not import albumentations or Lightning.
"""

from importlib import import_module

_EXPORTS = {
    "CAMVID_CLASSES": "camvid",
    "CAMVID_PALETTE": "camvid",
    "CamVidDataModule": "datamodule",
    "LabelEncoding": "labels",
    "CITYSCAPES_CLASSES": "cityscapes",
    "CITYSCAPES_LABEL_IDS": "cityscapes",
    "CITYSCAPES_PALETTE": "cityscapes",
    "CityscapesDataset": "cityscapes",
    "labelids_to_trainids": "cityscapes",
    "trainids_to_labelids": "cityscapes",
    "CityscapesDataModule": "datamodule",
    "FolderDataModule": "datamodule",
    "SegmentationDataModule": "datamodule",
    "FolderDataset": "folder",
    "IGNORE_INDEX": "constants",
    "IMAGENET_MEAN": "constants",
    "IMAGENET_STD": "constants",
    "eval_transform": "transforms",
    "normalize_image": "transforms",
    "train_transform": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
