"""EXIF-rotated images: training and evaluation pairs are read as stored, with a warning naming the files.

The images are real JPEGs (and PNGs with an eXIf chunk) carrying the orientation tag 0x0112, as
phones write them; their masks are drawn over the stored pixels, as labelling tools draw them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from seglite.data import CityscapesDataset, FolderDataset
from seglite.data.io import exif_orientation, read_rgb

ORIENTATION = 0x0112
RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_colour_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image, red on its left half and blue on its right, and its mask (1 on the red half, 0 elsewhere)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2], image[:, width // 2 :] = RED, BLUE
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 2] = 1
    return image, mask


def save_with_orientation(path: Path, rgb: np.ndarray, orientation: int | None) -> None:
    """Save ``rgb`` (JPEG or PNG by the suffix) with an EXIF orientation tag, as a phone camera does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    options = {"quality": 95} if path.suffix == ".jpg" else {}
    image.save(path, exif=exif, **options)


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def assert_aligned(sample: dict, mask: np.ndarray) -> None:
    """The image is red wherever its mask says 1 and blue wherever it says 0 (every pixel: JPEG keeps which is nearer)."""
    image = sample["image"].astype(int)
    assert sample["image"].shape[:2] == sample["mask"].shape == mask.shape
    np.testing.assert_array_equal(sample["mask"], mask)
    np.testing.assert_array_equal(image[..., 0] > image[..., 2], mask == 1)


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("size", [(48, 48), (32, 64)], ids=["square", "non-square"])
def test_a_rotated_training_jpeg_stays_aligned_with_its_mask(tmp_path, size, orientation):
    image, mask = two_colour_pair(*size)
    save_with_orientation(tmp_path / "train/images/photo.jpg", image, orientation)
    write_mask(tmp_path / "train/masks/photo.png", mask)
    assert read_rgb(tmp_path / "train/images/photo.jpg").shape[:2] == size[::-1]  # a viewer shows it turned
    with pytest.warns(UserWarning, match="EXIF orientation"):
        dataset = FolderDataset(str(tmp_path), "train", num_classes=2)
    assert_aligned(dataset[0], mask)


def test_the_warning_names_every_rotated_file_and_their_count_once(tmp_path):
    image, mask = two_colour_pair(32, 64)
    for name, orientation in (("a", 6), ("b", None), ("c", 8), ("d", 1)):
        save_with_orientation(tmp_path / f"train/images/{name}.jpg", image, orientation)
        write_mask(tmp_path / f"train/masks/{name}.png", mask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = FolderDataset(str(tmp_path), "train", num_classes=2)
        for index in range(len(dataset)):
            assert_aligned(dataset[index], mask)
    messages = [str(warning.message) for warning in caught if "EXIF" in str(warning.message)]
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith("2 of the 4 images of split 'train' carry an EXIF orientation other than 1")
    assert str(tmp_path / "train/images/a.jpg") in message and str(tmp_path / "train/images/c.jpg") in message
    assert "b.jpg" not in message and "d.jpg" not in message
    assert "as stored" in message


def test_an_upright_data_set_gives_no_warning(tmp_path):
    image, mask = two_colour_pair(32, 64)
    save_with_orientation(tmp_path / "train/images/a.jpg", image, 1)
    write_mask(tmp_path / "train/masks/a.png", mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_aligned(FolderDataset(str(tmp_path), "train", num_classes=2)[0], mask)


def test_a_rotated_cityscapes_png_stays_aligned_with_its_labels(tmp_path):
    # OpenCV applies a PNG's eXIf orientation too; label ids 7 (road) and 26 (car) become train ids 0 and 13
    image, mask = two_colour_pair(32, 64)
    name = "town_000000_000019"
    save_with_orientation(tmp_path / f"leftImg8bit/val/town/{name}_leftImg8bit.png", image, 6)
    write_mask(tmp_path / f"gtFine/val/town/{name}_gtFine_labelIds.png", np.where(mask == 1, 26, 7).astype(np.uint8))
    with pytest.warns(UserWarning, match=rf"1 of the 1 images of split 'val' carry an EXIF orientation.*{name}_leftImg8bit\.png"):
        dataset = CityscapesDataset(str(tmp_path), "val")
    sample = dataset[0]
    assert_aligned({"image": sample["image"], "mask": (sample["mask"] == 13).astype(np.uint8)}, mask)


def test_unlabelled_images_are_not_warned_about(tmp_path):
    image, _ = two_colour_pair(32, 64)
    save_with_orientation(tmp_path / "test/images/a.jpg", image, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample = FolderDataset(str(tmp_path), "test", num_classes=2)[0]
    assert sample["image"].shape[:2] == (32, 64)  # still read as stored: one rule for every data set


def test_exif_orientation_reads_the_tag_without_decoding(tmp_path):
    image, _ = two_colour_pair(32, 64)
    for suffix, orientation in ((".jpg", 6), (".png", 8), (".webp", 3)):
        save_with_orientation(tmp_path / f"a{suffix}", image, orientation)
        assert exif_orientation(tmp_path / f"a{suffix}") == orientation
    save_with_orientation(tmp_path / "plain.jpg", image, None)
    assert exif_orientation(tmp_path / "plain.jpg") == 1
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert exif_orientation(tmp_path / "broken.jpg") == 1  # the reader names an unreadable file, not this check


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_as_opencv_turns_it(tmp_path, orientation):
    """turned_as_tagged on the stored pixels equals OpenCV's own EXIF-applying reader, for all 8 tags."""
    from seglite.data.io import turned_as_tagged

    rgb = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"  # lossless: the comparison is exact
    save_with_orientation(path, rgb, orientation)
    stored = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(turned_as_tagged(stored, orientation), cv2.imread(str(path), cv2.IMREAD_COLOR))


def test_a_frame_folder_turns_tagged_frames_as_predict_does(tmp_path):
    from seglite.inference.video import open_source

    rgb = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    save_with_orientation(tmp_path / "frames" / "0001.png", rgb, 6)
    save_with_orientation(tmp_path / "frames" / "0002.png", np.ascontiguousarray(np.rot90(rgb, -1)), None)
    frames = list(open_source(str(tmp_path / "frames")).frames())
    assert [frame.bgr.shape[:2] for frame in frames] == [(40, 24), (40, 24)]  # one camera, as shown
    shown = [cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB) for frame in frames]
    np.testing.assert_array_equal(shown[0], shown[1])
    np.testing.assert_array_equal(shown[0], read_rgb(tmp_path / "frames" / "0001.png", orientation="exif"))
