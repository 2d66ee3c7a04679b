"""The synthetic demo set: Cityscapes layout, all 19 classes in train and val, deterministic, video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seglite.data import CityscapesDataset
from seglite.data.synthetic import LABEL_ID, make_demo_dataset, make_scene_image, write_demo_video


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return make_demo_dataset(root, num_train=3, num_val=3, num_test=1, size=(128, 256), seed=3, video=False)


@pytest.mark.parametrize("split", ["train", "val"])
def test_demo_loads_as_cityscapes_with_all_19_classes(demo_root, split):
    dataset = CityscapesDataset(str(demo_root), split)
    assert len(dataset) == 3
    present = set()
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample["image"].shape == (128, 256, 3) and sample["mask"].shape == (128, 256)
        present |= set(np.unique(sample["mask"]).tolist())
    assert present == set(range(19)) | {255}


def test_demo_writes_label_ids_including_ignored_ones(demo_root):
    paths = sorted((demo_root / "gtFine/train").rglob("*_labelIds.png"))
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths]
    ids = set(np.unique(np.stack(labels)).tolist())
    assert {LABEL_ID["ego vehicle"], LABEL_ID["road"], LABEL_ID["train"]} <= ids
    assert ids <= set(LABEL_ID.values())
    test = CityscapesDataset(str(demo_root), "test")
    assert len(test) == 1 and (test[0]["mask"] == 255).all()


def test_scenes_are_deterministic_and_varied():
    image, labels = make_scene_image(np.random.default_rng([5, 0, 1]), (64, 128))
    again, labels_again = make_scene_image(np.random.default_rng([5, 0, 1]), (64, 128))
    other, _ = make_scene_image(np.random.default_rng([5, 0, 2]), (64, 128))
    assert np.array_equal(image, again) and np.array_equal(labels, labels_again)
    assert np.abs(image.astype(int) - other).mean() > 10


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="size"):
        make_demo_dataset(tmp_path, size=(8, 8), video=False)
    with pytest.raises(ValueError, match="num_val"):
        make_demo_dataset(tmp_path, num_train=0, num_val=-1, num_test=0, video=False)


def test_demo_video_is_readable(tmp_path):
    path = write_demo_video(tmp_path / "street.mp4", size=(64, 128), seconds=1.0, fps=8)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 8 and frames[0].shape == (64, 128, 3)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 3  # the street moves


def test_demo_set_refuses_a_folder_of_someone_elses_and_links(tmp_path):
    from seglite.errors import OutputExistsError

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "photo.png").write_bytes(b"not ours")
    with pytest.raises(OutputExistsError, match="holds other files \\(photo.png\\)"):
        make_demo_dataset(theirs, num_train=1, num_val=0, num_test=0, size=(32, 32), video=False)
    assert [path.name for path in theirs.iterdir()] == ["photo.png"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        make_demo_dataset(link, num_train=1, num_val=0, num_test=0, size=(32, 32), video=False)
    assert not (tmp_path / "elsewhere").exists()


def test_demo_video_that_did_not_reach_the_disk_is_an_error_and_no_file(tmp_path, monkeypatch):
    from seglite.data.synthetic import writer
    from seglite.files import OutputWriteError

    real = cv2.VideoWriter

    class LosingWriter:  # frames after the third vanish, as on a full disk (OpenCV does not report it)
        def __init__(self, *args):
            self.inner, self.count = real(*args), 0

        def isOpened(self):
            return self.inner.isOpened()

        def write(self, frame):
            self.count += 1
            if self.count <= 3:
                self.inner.write(frame)

        def release(self):
            self.inner.release()

    monkeypatch.setattr(writer.cv2, "VideoWriter", LosingWriter)
    path = tmp_path / "street.mp4"
    with pytest.raises(OutputWriteError, match=f"cannot write {path}: 3 of 8 frames reached the disk"):
        write_demo_video(path, size=(64, 128), seconds=1.0, fps=8)
    assert list(tmp_path.iterdir()) == []
