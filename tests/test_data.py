"""Cityscapes label mapping against the official table; data sets and DataModules on tiny trees."""

from __future__ import annotations

import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seglite.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CityscapesDataModule,
    CityscapesDataset,
    FolderDataModule,
    FolderDataset,
    eval_transform,
    labelids_to_trainids,
    trainids_to_labelids,
)

# The official table, transcribed from cityscapesscripts/helpers/labels.py (mcordts/cityscapesScripts):
# name, id, trainId, category, color. The independent reference for the mapping below.
OFFICIAL_LABELS = [
    ("unlabeled", 0, 255, "void", (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", (0, 0, 0)),
    ("rectification border", 2, 255, "void", (0, 0, 0)),
    ("out of roi", 3, 255, "void", (0, 0, 0)),
    ("static", 4, 255, "void", (0, 0, 0)),
    ("dynamic", 5, 255, "void", (111, 74, 0)),
    ("ground", 6, 255, "void", (81, 0, 81)),
    ("road", 7, 0, "flat", (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", (244, 35, 232)),
    ("parking", 9, 255, "flat", (250, 170, 160)),
    ("rail track", 10, 255, "flat", (230, 150, 140)),
    ("building", 11, 2, "construction", (70, 70, 70)),
    ("wall", 12, 3, "construction", (102, 102, 156)),
    ("fence", 13, 4, "construction", (190, 153, 153)),
    ("guard rail", 14, 255, "construction", (180, 165, 180)),
    ("bridge", 15, 255, "construction", (150, 100, 100)),
    ("tunnel", 16, 255, "construction", (150, 120, 90)),
    ("pole", 17, 5, "object", (153, 153, 153)),
    ("polegroup", 18, 255, "object", (153, 153, 153)),
    ("traffic light", 19, 6, "object", (250, 170, 30)),
    ("traffic sign", 20, 7, "object", (220, 220, 0)),
    ("vegetation", 21, 8, "nature", (107, 142, 35)),
    ("terrain", 22, 9, "nature", (152, 251, 152)),
    ("sky", 23, 10, "sky", (70, 130, 180)),
    ("person", 24, 11, "human", (220, 20, 60)),
    ("rider", 25, 12, "human", (255, 0, 0)),
    ("car", 26, 13, "vehicle", (0, 0, 142)),
    ("truck", 27, 14, "vehicle", (0, 0, 70)),
    ("bus", 28, 15, "vehicle", (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", (0, 0, 110)),
    ("train", 31, 16, "vehicle", (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", (0, 0, 142)),
]
EVALUATED = sorted((t, name, i, color) for name, i, t, _, color in OFFICIAL_LABELS if 0 <= t < 255)


def expected_train_id(label_id: int) -> int:
    for _, i, train_id, _, _ in OFFICIAL_LABELS:
        if i == label_id and 0 <= train_id < 255:
            return train_id
    return 255


# ----------------------------------------------------------------------------- label table


def test_every_label_id_maps_as_the_official_table():
    ids = np.arange(256, dtype=np.uint8)
    assert labelids_to_trainids(ids).tolist() == [expected_train_id(i) for i in range(256)]
    # the license plate (-1) and out-of-range ids are ignored whatever the integer type
    wide = np.array([-1, 7, 33, 34, 300, 26], dtype=np.int32)
    assert labelids_to_trainids(wide).tolist() == [255, 0, 18, 255, 255, 13]
    assert labelids_to_trainids(ids).dtype == np.uint8


def test_class_names_and_palette_follow_the_official_table():
    assert len(EVALUATED) == 19 and [t for t, *_ in EVALUATED] == list(range(19))
    assert list(CITYSCAPES_CLASSES) == [name for _, name, _, _ in EVALUATED]
    assert CITYSCAPES_PALETTE.shape == (19, 3) and CITYSCAPES_PALETTE.dtype == np.uint8
    assert [tuple(c) for c in CITYSCAPES_PALETTE.tolist()] == [color for *_, color in EVALUATED]


def test_trainids_to_labelids_inverts_the_mapping():
    train_ids = np.arange(19, dtype=np.uint8)
    assert trainids_to_labelids(train_ids).tolist() == [i for _, _, i, _ in EVALUATED]
    rng = np.random.default_rng(0)
    prediction = rng.integers(0, 19, (7, 9)).astype(np.int64)
    assert np.array_equal(labelids_to_trainids(trainids_to_labelids(prediction)), prediction)
    assert trainids_to_labelids(np.array([255, 19], dtype=np.uint8)).tolist() == [0, 0]  # unlabeled


# ----------------------------------------------------------------------------- tiny trees

SIZE = (16, 32)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def random_rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def write_cityscapes(root: Path, split: str, names: list[str], labels: bool = True, city: str = "town") -> dict:
    """A Cityscapes tree of random images with label ids 0..33; returns {name: (rgb, label ids)}."""
    written = {}
    for k, name in enumerate(names):
        rgb = random_rgb(k)
        ids = np.random.default_rng(100 + k).integers(0, 34, SIZE, dtype=np.uint8)
        write_png(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if labels:
            write_png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", ids)
        written[name] = (rgb, ids)
    return written


def test_cityscapes_dataset_reads_rgb_and_train_ids(tmp_path):
    written = write_cityscapes(tmp_path, "train", ["town_000001_000019", "town_000000_000019"])
    dataset = CityscapesDataset(str(tmp_path), "train")
    assert len(dataset) == 2
    sample = dataset[0]  # sorted by name
    rgb, ids = written["town_000000_000019"]
    assert sample["path"].endswith("town_000000_000019_leftImg8bit.png")
    assert sample["image"].dtype == np.uint8 and np.array_equal(sample["image"], rgb)
    assert np.array_equal(sample["mask"], [[expected_train_id(v) for v in row] for row in ids])


def test_cityscapes_prefers_label_train_ids(tmp_path):
    write_cityscapes(tmp_path, "val", ["a_1_1"])
    train_ids = np.full(SIZE, 4, dtype=np.uint8)
    write_png(tmp_path / "gtFine" / "val" / "town" / "a_1_1_gtFine_labelTrainIds.png", train_ids)
    assert (CityscapesDataset(str(tmp_path), "val")[0]["mask"] == 4).all()


def test_cityscapes_test_split_has_ignore_masks(tmp_path):
    write_cityscapes(tmp_path, "test", ["a_1_1"], labels=False)
    sample = CityscapesDataset(str(tmp_path), "test", transform=eval_transform())[0]
    assert sample["image"].shape == (3, *SIZE) and sample["image"].dtype == torch.float32
    assert sample["mask"].dtype == torch.int64 and (sample["mask"] == 255).all()


def test_cityscapes_missing_root_and_split(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        CityscapesDataset(str(tmp_path / "nowhere"))
    message = str(error.value)
    for needed in (str(tmp_path / "nowhere"), "leftImg8bit/<split>/<city>", "gtFine", "README", "make_demo_data.py"):
        assert needed in message
    write_cityscapes(tmp_path, "train", ["a_1_1"])
    with pytest.raises(FileNotFoundError, match="val"):
        CityscapesDataset(str(tmp_path), "val")
    with pytest.raises(ValueError, match="split"):
        CityscapesDataset(str(tmp_path), "training")  # type: ignore[arg-type]


def test_cityscapes_unmatched_files_are_named_and_counted(tmp_path):
    write_cityscapes(tmp_path, "train", ["a_1_1", "b_1_1", "c_1_1"])
    (tmp_path / "gtFine/train/town/b_1_1_gtFine_labelIds.png").unlink()
    (tmp_path / "gtFine/train/town/c_1_1_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 file\(s\).*b_1_1_leftImg8bit\.png"):
        CityscapesDataset(str(tmp_path), "train")
    write_cityscapes(tmp_path, "val", ["a_1_1"])
    (tmp_path / "leftImg8bit/val/town/a_1_1_leftImg8bit.png").unlink()
    write_cityscapes(tmp_path, "val", ["z_1_1"])
    with pytest.raises(FileNotFoundError, match=r"1 file\(s\).*no matching image.*a_1_1_gtFine_labelIds\.png"):
        CityscapesDataset(str(tmp_path), "val")


def test_corrupt_image_or_label_is_named(tmp_path):
    write_cityscapes(tmp_path, "train", ["a_1_1", "b_1_1"])
    bad_image = tmp_path / "leftImg8bit/train/town/a_1_1_leftImg8bit.png"
    bad_image.write_bytes(b"not a png")
    bad_label = tmp_path / "gtFine/train/town/b_1_1_gtFine_labelIds.png"
    bad_label.write_bytes(bad_label.read_bytes()[:40])  # truncated
    dataset = CityscapesDataset(str(tmp_path), "train")
    with pytest.raises(OSError, match="a_1_1_leftImg8bit.png"):
        dataset[0]
    with pytest.raises(OSError, match="b_1_1_gtFine_labelIds.png"):
        dataset[1]


def test_image_and_label_sizes_must_agree(tmp_path):
    write_cityscapes(tmp_path, "train", ["a_1_1"])
    write_png(tmp_path / "gtFine/train/town/a_1_1_gtFine_labelIds.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="same size"):
        CityscapesDataset(str(tmp_path), "train")[0]


def write_folder(root: Path, split: str, masks: dict[str, np.ndarray], image_ext: str = ".png") -> None:
    for k, (stem, mask) in enumerate(masks.items()):
        write_png(root / split / "images" / f"{stem}{image_ext}", random_rgb(k))
        write_png(root / split / "masks" / f"{stem}.png", mask)


def test_folder_dataset_matches_by_stem(tmp_path):
    mask = np.full(SIZE, 255, np.uint8)
    mask[:, :10] = 2
    write_folder(tmp_path, "train", {"b": mask, "a": np.zeros(SIZE, np.uint8)}, image_ext=".jpg")
    dataset = FolderDataset(str(tmp_path), "train", num_classes=3)
    assert [Path(dataset[i]["path"]).name for i in range(2)] == ["a.jpg", "b.jpg"]
    assert np.array_equal(dataset[1]["mask"], mask)


def test_folder_mask_value_out_of_range_is_named(tmp_path):
    mask = np.zeros(SIZE, np.uint8)
    mask[3, 3] = 7
    write_folder(tmp_path, "train", {"img": mask})
    with pytest.raises(ValueError, match=r"img\.png holds the value\(s\) 7 .*num_classes is 3"):
        FolderDataset(str(tmp_path), "train", num_classes=3)[0]
    assert FolderDataset(str(tmp_path), "train", num_classes=8)[0]["mask"][3, 3] == 7
    wide = np.zeros(SIZE, np.uint16)
    wide[0, 0] = 300  # would wrap to 44 as uint8
    write_png(tmp_path / "train/masks/img.png", wide)
    with pytest.raises(ValueError, match=r"value\(s\) 300 "):
        FolderDataset(str(tmp_path), "train")[0]


def test_folder_errors_and_unlabelled_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="images"):
        FolderDataset(str(tmp_path), "train", num_classes=2)
    write_folder(tmp_path, "train", {"a": np.zeros(SIZE, np.uint8), "b": np.zeros(SIZE, np.uint8)})
    (tmp_path / "train/masks/b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 file\(s\).*b\.png"):
        FolderDataset(str(tmp_path), "train", num_classes=2)
    write_png(tmp_path / "test/images/c.png", random_rgb(0))
    assert (FolderDataset(str(tmp_path), "test", num_classes=2)[0]["mask"] == 255).all()



def test_folder_mask_in_another_format_than_png_is_named(tmp_path):
    from seglite.errors import DataFormatError

    write_folder(tmp_path, "train", {"a": np.zeros(SIZE, np.uint8), "b": np.zeros(SIZE, np.uint8)})
    (tmp_path / "train/masks/b.png").unlink()
    cv2.imwrite(str(tmp_path / "train/masks/b.jpg"), np.zeros(SIZE, np.uint8))
    with pytest.raises(DataFormatError, match=r"^mask .*/train/masks/b\.jpg is a \.jpg file: masks must be PNG "):
        FolderDataset(str(tmp_path), "train", num_classes=2)

# ----------------------------------------------------------------------------- DataModules


def test_datamodule_missing_data_says_where_and_how(tmp_path):
    module = CityscapesDataModule(root=str(tmp_path / "cityscapes"), num_workers=0)
    with pytest.raises(FileNotFoundError) as error:
        module.setup("fit")
    message = str(error.value)
    demo_command = "python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml"
    for needed in ("cityscapes", "--data.root PATH", demo_command):
        assert needed in message


def test_demo_datamodule_creates_the_set_and_loads_batches(tmp_path):
    module = CityscapesDataModule(
        root=str(tmp_path / "demo"), batch_size=2, num_workers=0, crop_size=(32, 48), base_size=(48, 96),
        demo=True, demo_num_train=2, demo_num_val=1, demo_num_test=1, demo_size=(48, 96),
    )  # fmt: skip
    module.prepare_data()
    assert (tmp_path / "demo/leftImg8bit/train").is_dir() and (tmp_path / "demo/demo_street.mp4").is_file()
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 48) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 32, 48) and batch["mask"].dtype == torch.int64
    val = next(iter(module.val_dataloader()))
    assert val["image"].shape == (1, 3, 48, 96) and len(val["path"]) == 1
    predict = next(iter(module.predict_dataloader()))
    assert (predict["mask"] == 255).all()
    assert module.num_classes == 19 and module.class_names == CITYSCAPES_CLASSES
    assert module.palette.shape == (19, 3)


def test_loader_workers_draw_different_crops(tmp_path):
    write_folder(tmp_path, "train", {f"img{k}": np.zeros(SIZE, np.uint8) for k in range(4)})
    write_folder(tmp_path, "val", {"img": np.zeros(SIZE, np.uint8)})
    same = random_rgb(0)
    for k in range(4):  # identical images: only the augmentation can tell batches apart
        write_png(tmp_path / f"train/images/img{k}.png", same)
    module = FolderDataModule(
        root=str(tmp_path), num_classes=2, batch_size=1, num_workers=2, crop_size=(8, 8), persistent_workers=False
    )
    module.setup("fit")
    crops = [batch["image"] for batch in module.train_dataloader()]
    assert not torch.equal(crops[0], crops[1])  # consecutive batches come from the two workers


def test_folder_datamodule_metadata_and_validation(tmp_path):
    module = FolderDataModule(root=str(tmp_path), num_classes=3, class_names=["a", "b", "c"], num_workers=0)
    assert module.num_classes == 3 and module.class_names == ("a", "b", "c")
    assert module.palette.shape == (3, 3) and len({tuple(c) for c in module.palette.tolist()}) == 3
    with pytest.raises(ValueError, match="class_names"):
        FolderDataModule(root=str(tmp_path), num_classes=3, class_names=["a"])
    with pytest.raises(ValueError, match="palette"):
        FolderDataModule(root=str(tmp_path), num_classes=2, palette=[(0, 0, 0)])
    with pytest.raises(FileNotFoundError, match="--data.root PATH"):
        module.setup("fit")


@pytest.mark.parametrize("cls", [CityscapesDataModule, FolderDataModule])
def test_datamodule_signatures_suit_lightning_cli(cls):
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        assert parameter.annotation is not inspect.Parameter.empty, name


# ----------------------------------------------------------------------------- labels validated on load


def test_label_train_ids_are_range_checked_never_wrapped(tmp_path):
    write_cityscapes(tmp_path, "val", ["a_1_1"])
    path = tmp_path / "gtFine/val/town/a_1_1_gtFine_labelTrainIds.png"
    wide = np.full(SIZE, 255, np.uint16)
    wide[:4] = 13
    write_png(path, wide)  # 16-bit, but only valid values: accepted
    sample = CityscapesDataset(str(tmp_path), "val")[0]
    assert sample["mask"].dtype == np.uint8 and (sample["mask"][:4] == 13).all() and (sample["mask"][4:] == 255).all()
    wide[0, 0] = 269  # would wrap to 13 (car) as uint8
    write_png(path, wide)
    expected = r"a_1_1_gtFine_labelTrainIds\.png holds train ids 269 \(1 pixels\); train ids must be 0\.\.18 or 255"
    with pytest.raises(ValueError, match=expected):
        CityscapesDataset(str(tmp_path), "val")[0]
    narrow = np.zeros(SIZE, np.uint8)
    narrow[1, :3] = 19
    narrow[2, 0] = 254
    write_png(path, narrow)
    with pytest.raises(ValueError, match=r"holds train ids 19, 254 \(4 pixels\)"):
        CityscapesDataset(str(tmp_path), "val")[0]


def test_label_ids_are_range_checked(tmp_path):
    write_cityscapes(tmp_path, "val", ["a_1_1"])
    path = tmp_path / "gtFine/val/town/a_1_1_gtFine_labelIds.png"
    wide = np.full(SIZE, 26, np.uint16)
    write_png(path, wide)
    assert (CityscapesDataset(str(tmp_path), "val")[0]["mask"] == 13).all()  # 16-bit PNG of valid ids
    wide[3, 3] = 26 + 256  # wraps to 26 (car) as uint8
    write_png(path, wide)
    with pytest.raises(ValueError, match=r"a_1_1_gtFine_labelIds\.png holds label ids 282 .*label ids must be 0\.\.33$"):
        CityscapesDataset(str(tmp_path), "val")[0]
    narrow = np.full(SIZE, 7, np.uint8)
    narrow[0, 0] = 34
    write_png(path, narrow)
    with pytest.raises(ValueError, match="holds label ids 34 "):
        CityscapesDataset(str(tmp_path), "val")[0]


def test_folder_masks_without_num_classes_still_reject_values_above_254(tmp_path):
    wide = np.zeros(SIZE, np.uint16)
    wide[0, 0] = 255
    write_folder(tmp_path, "train", {"a": wide})
    assert FolderDataset(str(tmp_path), "train")[0]["mask"][0, 0] == 255  # ignore
    wide[0, 1] = 256
    write_png(tmp_path / "train/masks/a.png", wide)
    with pytest.raises(ValueError, match=r"a\.png holds the value\(s\) 256 "):
        FolderDataset(str(tmp_path), "train")[0]


def test_cityscapes_image_with_another_extension_is_named_as_such(tmp_path):
    write_cityscapes(tmp_path, "train", ["a_1_1", "b_1_1"])
    png = tmp_path / "leftImg8bit/train/town/b_1_1_leftImg8bit.png"
    jpg = png.with_suffix(".jpg")
    cv2.imwrite(str(jpg), cv2.imread(str(png)))
    png.unlink()
    with pytest.raises(ValueError, match=r"extension '\.jpg' instead of '\.png': .*b_1_1_leftImg8bit\.jpg"):
        CityscapesDataset(str(tmp_path), "train")


# ----------------------------------------------------------------------------- loaders


def test_a_batch_larger_than_the_training_set_is_an_error(tmp_path):
    write_folder(tmp_path, "train", {f"img{k}": np.zeros(SIZE, np.uint8) for k in range(3)})
    write_folder(tmp_path, "val", {"img": np.zeros(SIZE, np.uint8)})
    module = FolderDataModule(root=str(tmp_path), num_classes=2, batch_size=4, num_workers=0, crop_size=(8, 8))
    module.setup("fit")
    with pytest.raises(ValueError, match=r"batch_size is 4 but the training split 'train' has 3 images"):
        module.train_dataloader()


def test_bad_loader_arguments_name_the_class_and_argument():
    with pytest.raises(ValueError, match=r"^CityscapesDataModule: batch_size must be a positive integer, got -1$"):
        CityscapesDataModule(batch_size=-1)
    with pytest.raises(ValueError, match=r"^FolderDataModule: num_workers must be an integer >= 0, got -2$"):
        FolderDataModule(root="x", num_classes=2, num_workers=-2)


class _BrokenLabels(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        from seglite.errors import DataFormatError

        raise DataFormatError(f"label map broken_{index}.png holds train ids 77")


def test_a_loader_workers_error_is_shown_as_its_own_message():
    from seglite.lit.cli import error_message

    loader = torch.utils.data.DataLoader(_BrokenLabels(), batch_size=1, num_workers=1)
    with pytest.raises(ValueError) as caught:
        next(iter(loader))
    assert "Traceback" in str(caught.value)  # what torch hands over: the worker's whole traceback
    assert error_message(caught.value) == "label map broken_0.png holds train ids 77 (in loader worker 0)"


# ----------------------------------------------------------------------------- the demo set's folder


def demo_module(root: Path, **options) -> CityscapesDataModule:
    settings = {"demo_num_train": 2, "demo_num_val": 1, "demo_num_test": 0, "demo_size": (32, 64)}
    settings.update(options)
    return CityscapesDataModule(root=str(root), num_workers=0, demo=True, **settings)


def test_demo_writes_only_into_a_missing_empty_or_its_own_folder(tmp_path):
    from seglite.data.synthetic import DEMO_MARKER, read_demo_marker

    missing = tmp_path / "missing"
    demo_module(missing).prepare_data()
    assert read_demo_marker(missing)["complete"] is True
    images = sorted((missing / "leftImg8bit").rglob("*.png"))
    assert len(images) == 3
    stamp = images[0].stat().st_mtime_ns
    demo_module(missing).prepare_data()  # complete, same options: used as is
    assert images[0].stat().st_mtime_ns == stamp

    empty = tmp_path / "empty"
    empty.mkdir()
    demo_module(empty).prepare_data()
    assert (empty / DEMO_MARKER).is_file()

    theirs = tmp_path / "theirs"
    (theirs / "train" / "images").mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    refused = r"will not write the synthetic demo set into .*theirs: the folder holds other files \(notes\.txt, train\)"
    with pytest.raises(FileExistsError, match=refused):
        demo_module(theirs).prepare_data()
    assert sorted(path.name for path in theirs.iterdir()) == ["notes.txt", "train"]


def test_demo_rewrites_its_own_folder_when_options_change_or_writing_was_interrupted(tmp_path, monkeypatch):
    from seglite.data.synthetic import read_demo_marker, writer

    root = tmp_path / "demo"
    demo_module(root, demo_num_train=4).prepare_data()
    demo_module(root, demo_num_train=2).prepare_data()  # fewer images: the stale ones are removed
    assert len(list((root / "leftImg8bit" / "train").rglob("*.png"))) == 2
    assert len(list((root / "gtFine" / "train").rglob("*.png"))) == 2

    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = writer.write_image
    monkeypatch.setattr(writer, "write_image", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        demo_module(root, demo_seed=5).prepare_data()
    monkeypatch.setattr(writer, "write_image", real)
    assert read_demo_marker(root)["complete"] is False
    module = demo_module(root, demo_seed=5)
    module.setup("fit")  # an interrupted set is rewritten before it is used
    assert read_demo_marker(root)["complete"] is True and len(module.datasets["train"]) == 2


def test_demo_uses_a_real_cityscapes_tree_without_writing(tmp_path):
    write_cityscapes(tmp_path, "train", ["a_1_1"])
    write_cityscapes(tmp_path, "val", ["b_1_1"])
    before = sorted(tmp_path.rglob("*"))
    module = demo_module(tmp_path, demo_num_train=1)
    module.setup("fit")
    assert len(module.datasets["train"]) == 1
    assert sorted(tmp_path.rglob("*")) == before
