"""Predictor: torch and ONNX Runtime backends agree, masks have the image's size, batches equal singles, errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seglite.data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from seglite.inference.predictor import ModelFileNotFoundError, ModelLoadError, Predictor

# Lightning rebuilds models from checkpoints with a jsonargparse call that warns of its own deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")

ODD_SIZES = [(61, 97), (64, 96), (33, 130)]
TINY_MODEL = {
    "class_path": "seglite.models.LRASPP",
    "init_args": {
        "backbone": {"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {"variant": "small", "width_mult": 0.5, "output_stride": 16}},
        "num_classes": 19,
    },
}


def tiny_task():
    """A SegmentationTask instantiated as LightningCLI does, so its checkpoint rebuilds the model from config."""
    from pytorch_lightning.cli import instantiate_module
    from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters_context

    from seglite.lit.task import SegmentationTask

    config = {"model": TINY_MODEL, "class_names": list(CITYSCAPES_CLASSES), "palette": CITYSCAPES_PALETTE.tolist()}
    torch.manual_seed(0)
    with _given_hyperparameters_context(config, "pytorch_lightning.cli.instantiate_module"):
        task = instantiate_module(SegmentationTask, config)
    # random BN statistics, so that an export that mishandles normalisation layers shows
    for module in task.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return task.eval()


def save_checkpoint(task, path: Path) -> Path:
    """The parts of a Lightning checkpoint that ``load_from_checkpoint`` reads."""
    import pytorch_lightning as pl

    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams), "pytorch-lightning_version": pl.__version__}, path)
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tiny_task(), tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt")


@pytest.fixture(scope="module")
def torch_predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, backend="torch")


@pytest.fixture(scope="module")
def onnx_predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, backend="onnxruntime")


def random_images(sizes, seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, size=(*size, 3), dtype=np.uint8) for size in sizes]


def test_checkpoint_metadata(torch_predictor, onnx_predictor):
    for predictor in (torch_predictor, onnx_predictor):
        assert predictor.num_classes == 19
        assert predictor.class_names == list(CITYSCAPES_CLASSES)
        assert predictor.palette == CITYSCAPES_PALETTE.tolist()


@pytest.mark.parametrize("size", [None, (64, 96)])
def test_backends_agree(checkpoint, torch_predictor, onnx_predictor, size):
    if size is not None:
        torch_predictor = Predictor.from_checkpoint(checkpoint, backend="torch", size=size)
        onnx_predictor = Predictor.from_checkpoint(checkpoint, backend="onnxruntime", size=size)
    for image in random_images(ODD_SIZES):
        reference, exported = torch_predictor.predict_logits(image), onnx_predictor.predict_logits(image)
        assert reference.shape == (19, *image.shape[:2])
        assert np.abs(reference - exported).max() < 1e-3
        agreement = (torch_predictor.predict(image) == onnx_predictor.predict(image)).mean()
        assert agreement >= 0.999


def test_mask_matches_independent_preprocessing(torch_predictor):
    """Normalisation written out here, not taken from seglite: ImageNet mean/std on 0-1 RGB."""
    image = random_images([(61, 97)])[0]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    normalised = ((image / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)
    with torch.inference_mode():
        logits = torch_predictor.runner.model(torch.from_numpy(normalised)[None])
    np.testing.assert_array_equal(torch_predictor.predict(image), logits.argmax(1)[0].numpy())


@pytest.mark.parametrize("size", [None, (32, 48)])
def test_masks_have_image_size(checkpoint, size):
    predictor = Predictor.from_checkpoint(checkpoint, size=size)
    for image in random_images(ODD_SIZES):
        mask = predictor.predict(image)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert mask.max() < 19


def test_batch_equals_single(torch_predictor, onnx_predictor):
    images = random_images([(61, 97), (33, 130), (61, 97), (61, 97), (64, 96)], seed=1)
    for predictor in (torch_predictor, onnx_predictor):
        predictor.batch_size = 2  # the three 61x97 images: a batch of two and one of one
        batched = predictor.predict_batch(images)
        predictor.batch_size = 8
        assert len(batched) == len(images)
        for image, mask in zip(images, batched):
            np.testing.assert_array_equal(mask, predictor.predict(image))


def test_channels_last_matches(checkpoint, torch_predictor):
    predictor = Predictor.from_checkpoint(checkpoint, backend="torch", channels_last=True)
    image = random_images([(61, 97)])[0]
    np.testing.assert_allclose(predictor.predict_logits(image), torch_predictor.predict_logits(image), atol=1e-4)


def test_onnx_path_is_exported_once_and_checked(checkpoint, tmp_path, onnx_predictor):
    onnx_path = tmp_path / "model.onnx"
    first = Predictor.from_checkpoint(checkpoint, backend="onnxruntime", onnx_path=onnx_path)
    assert onnx_path.is_file()
    modified = onnx_path.stat().st_mtime_ns
    second = Predictor.from_checkpoint(checkpoint, backend="onnxruntime", onnx_path=onnx_path)
    assert onnx_path.stat().st_mtime_ns == modified  # reused, not re-exported
    image = random_images([(33, 130)])[0]
    np.testing.assert_array_equal(first.predict(image), second.predict(image))
    np.testing.assert_array_equal(first.predict(image), onnx_predictor.predict(image))
    other = tmp_path / "other.ckpt"  # another checkpoint: same model, one more entry
    torch.save({**torch.load(checkpoint, weights_only=False), "epoch": 1}, other)
    with pytest.raises(ModelLoadError, match="not exported from"):
        Predictor.from_checkpoint(other, backend="onnxruntime", onnx_path=onnx_path)


def test_missing_files_are_named(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(ModelFileNotFoundError, match=str(missing)):
        Predictor.from_checkpoint(missing)
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        Predictor.from_onnx(tmp_path / "nope.onnx")
    with pytest.raises(ModelFileNotFoundError, match="is a folder"):
        Predictor.from_onnx(tmp_path)


def test_unusable_model_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        Predictor.from_onnx(garbage)
    no_config = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, no_config)
    with pytest.raises(ModelLoadError, match="seglite fit"):
        Predictor.from_checkpoint(no_config)


@pytest.mark.parametrize(
    "image, error, message",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), ValueError, "image must have dtype uint8"),
        (np.zeros((8, 8), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\)"),
        (np.zeros((8, 8, 4), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\)"),
        (np.zeros((0, 8, 3), dtype=np.uint8), ValueError, "must not be empty"),
        ([[0, 0, 0]], TypeError, "image must be a numpy array"),
    ],
)
def test_bad_images(torch_predictor, image, error, message):
    with pytest.raises(error, match=message):
        torch_predictor.predict(image)


def test_bad_batch_names_the_element(torch_predictor):
    good = random_images([(16, 16)])[0]
    with pytest.raises(ValueError, match=r"images\[1\] must have dtype uint8"):
        torch_predictor.predict_batch([good, good.astype(np.int32)])
    with pytest.raises(TypeError, match="images must be a list"):
        torch_predictor.predict_batch(good)


def test_bad_options(checkpoint, torch_predictor):
    with pytest.raises(ValueError, match="backend must be"):
        Predictor.from_checkpoint(checkpoint, backend="tensorrt")
    with pytest.raises(ValueError, match="size must be"):
        Predictor.from_model(torch_predictor.runner.model, size=(0, 10))
    with pytest.raises(ValueError, match="class_names has 2 names"):
        Predictor.from_model(torch_predictor.runner.model, class_names=["a", "b"])
