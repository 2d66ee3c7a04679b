"""ImageNet initialisation of the backbones from local torchvision files: the ``weights`` option.

The reference is torchvision itself: its classifiers, built here with random weights and
non-trivial BN statistics, saved the way a user saves downloaded ones
(``torch.save(model.state_dict(), path)``), and their intermediate outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from helpers import fit_args, run_config
from test_mobilenets import randomise
from torch import nn

import seglite.lit.cli as cli_module
from seglite.checkpoints import load_checkpoint, model_config
from seglite.errors import ConfigurationError
from seglite.files import InputNotFoundError
from seglite.inference import Predictor
from seglite.lit.cli import run, run_cli
from seglite.lit.task import SegmentationTask
from seglite.models import build_preset
from seglite.models.backbones import MobileNetV2, MobileNetV3, ShuffleNetV2
from seglite.models.weights import FULL_TAIL_HINT

FEATURE_NAMES = ["stem", "layer1", "layer2", "layer3", "layer4"]
NOMINAL_STRIDES = [2, 4, 8, 16, 32]
OPTION = "--model.model.init_args."  # seglite.models.Preset's, as the configs name the model

# torchvision model name: (torchvision builder, our backbone builder, the file name torchvision downloads)
FAMILIES = {
    "mobilenet_v2": (torchvision.models.mobilenet_v2, MobileNetV2, "mobilenet_v2-b0353104.pth"),
    "mobilenet_v3_large": (
        torchvision.models.mobilenet_v3_large,
        lambda **options: MobileNetV3("large", **options),
        "mobilenet_v3_large-8738ca79.pth",
    ),
    "mobilenet_v3_small": (
        torchvision.models.mobilenet_v3_small,
        lambda **options: MobileNetV3("small", **options),
        "mobilenet_v3_small-047dcff4.pth",
    ),
    **{
        f"shufflenet_v2_x{label}": (
            getattr(torchvision.models, f"shufflenet_v2_x{label}"),
            lambda width_mult=width, **options: ShuffleNetV2(width_mult=width_mult, **options),
            file_name,
        )
        for label, width, file_name in [
            ("0_5", 0.5, "shufflenetv2_x0.5-f707e7126e.pth"),
            ("1_0", 1.0, "shufflenetv2_x1-5666bf0f80.pth"),
            ("1_5", 1.5, "shufflenetv2_x1_5-3c479a10.pth"),
            ("2_0", 2.0, "shufflenetv2_x2_0-8be3c8ee.pth"),
        ]
    },
}


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """``imagenet(name) -> (file, torchvision model)``: a torchvision classifier with random weights, saved once."""
    folder = tmp_path_factory.mktemp("imagenet")
    made: dict[str, tuple[Path, nn.Module]] = {}

    def make(name: str) -> tuple[Path, nn.Module]:
        if name not in made:
            build, _, file_name = FAMILIES[name]
            reference = randomise(build(weights=None))
            path = folder / file_name
            torch.save(reference.state_dict(), path)
            made[name] = (path, reference)
        return made[name]

    return make


def torchvision_features(name: str, reference: nn.Module, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """torchvision's output at each stride 2..32: the last layer that outputs that stride, the backbone's end."""
    if name.startswith("shufflenet"):
        stem = reference.conv1(x)
        pooled = reference.maxpool(stem)
        layer2 = reference.stage2(pooled)
        layer3 = reference.stage3(layer2)
        return {2: stem, 4: pooled, 8: layer2, 16: layer3, 32: reference.conv5(reference.stage4(layer3))}
    # MobileNetV2's backbone ends before torchvision's last 1x1 conv (to 1280); MobileNetV3's includes it
    layers = reference.features[:-1] if name == "mobilenet_v2" else reference.features
    outputs = {}
    for layer in layers:
        x_next = layer(x if not outputs else outputs[max(outputs)])
        outputs[x.shape[-1] // x_next.shape[-1]] = x_next
    return outputs


def skipped_modules(name: str, reference: nn.Module) -> tuple[str, ...]:
    """The torchvision modules the backbone leaves out: the classifier, and MobileNetV2's last 1x1 conv."""
    if name.startswith("shufflenet"):
        return ("fc.",)
    if name == "mobilenet_v2":
        return (f"features.{len(reference.features) - 1}.", "classifier.")
    return ("classifier.",)


def image(height: int = 64, width: int = 96) -> torch.Tensor:
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_weights_load_every_backbone_tensor_and_give_torchvision_features(imagenet, name: str, output_stride: int) -> None:
    path, reference = imagenet(name)
    backbone = FAMILIES[name][1](output_stride=output_stride, weights=str(path)).eval()

    # the report: every backbone tensor came from the file; what was skipped is torchvision's classifier
    report = backbone.loaded_weights
    skipped = skipped_modules(name, reference)
    source = reference.state_dict()
    assert report.tensors == len(backbone.state_dict()) == len(source) - len(report.skipped)
    assert report.skipped == tuple(key for key in source if key.startswith(skipped))
    classifier_parameters = sum(p.numel() for key, p in reference.named_parameters() if key.startswith(skipped))
    expected_parameters = sum(p.numel() for p in reference.parameters()) - classifier_parameters
    assert report.parameters == sum(p.numel() for p in backbone.parameters()) == expected_parameters
    assert str(report).startswith(f"loaded {report.tensors} tensors ({expected_parameters:,} parameters) from {path} into ")

    # the features: every stage before the output stride takes effect is torchvision's (dilation
    # changes the later ones; the tests of output_stride compare those with dilated torchvision)
    x = image()
    with torch.no_grad():
        ours = backbone(x)
        expected = torchvision_features(name, reference, x)
    for feature, stride in zip(FEATURE_NAMES, NOMINAL_STRIDES):
        if stride <= output_stride:
            torch.testing.assert_close(ours[feature], expected[stride], rtol=1e-5, atol=1e-5, msg=feature)


@pytest.mark.parametrize("variant", ["large", "small"])
def test_mobilenet_v3_at_output_stride_16_is_torchvisions_dilated_backbone(imagenet, variant: str) -> None:
    """torchvision's ``mobilenet_v3_*(dilated=True)`` (what its LR-ASPP uses) with the same file."""
    name = f"mobilenet_v3_{variant}"
    path, _ = imagenet(name)
    dilated = FAMILIES[name][0](weights=None, dilated=True)
    dilated.load_state_dict(torch.load(path, weights_only=True))
    ours = MobileNetV3(variant, output_stride=16, dilation_rule="torchvision", weights=str(path)).eval()
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["layer4"], dilated.eval().features(x), rtol=1e-5, atol=1e-5)


def test_a_segmentation_preset_takes_the_weights_through_backbone_options(imagenet) -> None:
    path, reference = imagenet("mobilenet_v3_large")
    model = build_preset("lraspp_mobilenet_v3_large", variant="torchvision", backbone_options={"weights": str(path)})
    assert model.backbone.loaded_weights.source == str(path)
    first = next(iter(reference.parameters()))
    torch.testing.assert_close(next(iter(model.backbone.parameters())), first, rtol=0, atol=0)


def test_a_backbone_with_imagenet_weights_scripts(imagenet) -> None:
    path, _ = imagenet("mobilenet_v3_small")
    backbone = MobileNetV3("small", weights=str(path)).eval()
    x = image(32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(backbone)(x)["layer4"], backbone(x)["layer4"])


# (backbone options, file): our segmentation configs' reduced tail against full-tail ImageNet weights
REDUCED_TAIL = {
    "mnv3_large_authors_tail": (lambda: {"variant": "large", "tail_reduction": "all"}, "mobilenet_v3_large"),
    "mnv3_large_torchvision_tail": (lambda: {"variant": "large", "tail_reduction": "outputs"}, "mobilenet_v3_large"),
    "mnv3_small_authors_tail": (lambda: {"variant": "small", "tail_reduction": "all"}, "mobilenet_v3_small"),
    "mnv2": (lambda: {}, "mobilenet_v2"),
    "shufflenet_v2_x1_0": (lambda: {"width_mult": 1.0}, "shufflenet_v2_x1_0"),
}
BACKBONE_CLASSES = {"mobilenet_v2": MobileNetV2, "mobilenet_v3_large": MobileNetV3, "mobilenet_v3_small": MobileNetV3}
# the first block of torchvision's stride-32 stage, where the reduced tail starts
LAST_STAGE = {
    "mobilenet_v2": "features.14.",
    "mobilenet_v3_large": "features.13.",
    "mobilenet_v3_small": "features.9.",
    "shufflenet_v2_x1_0": "stage4.0.",
}


@pytest.mark.parametrize("case", sorted(REDUCED_TAIL))
def test_reduced_tail_says_to_set_it_false(imagenet, case: str) -> None:
    options, name = REDUCED_TAIL[case]
    path, reference = imagenet(name)
    backbone_class = BACKBONE_CLASSES.get(name, ShuffleNetV2)
    with pytest.raises(ConfigurationError) as caught:
        backbone_class(reduced_tail=True, weights=str(path), **options())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{backbone_class.__name__}: weights file {path} does not fit: its tensor ")
    assert message.endswith("; " + FULL_TAIL_HINT)
    assert "set reduced_tail: false (ImageNet weights have the full tail, as torchvision's lraspp_mobilenet_v3_large does)" in message
    # the tensor named is one of the file's last stage: the first whose outputs reduced_tail halves
    named = message.split("its tensor '")[1].split("'")[0]
    assert named in reference.state_dict() and named.startswith(LAST_STAGE[name])


# (backbone, file): another family or width than the file's
OTHER_MODELS = {
    "large_from_small": (lambda **o: MobileNetV3("large", **o), "mobilenet_v3_small"),
    "small_from_large": (lambda **o: MobileNetV3("small", **o), "mobilenet_v3_large"),
    "mnv2_from_mnv3": (lambda **o: MobileNetV2(**o), "mobilenet_v3_large"),
    "mnv3_half_width": (lambda **o: MobileNetV3("large", width_mult=0.5, **o), "mobilenet_v3_large"),
    "shufflenet_0_5_from_1_0": (lambda **o: ShuffleNetV2(width_mult=0.5, **o), "shufflenet_v2_x1_0"),
    "shufflenet_2_0_from_1_5": (lambda **o: ShuffleNetV2(width_mult=2.0, **o), "shufflenet_v2_x1_5"),
    "reduced_shufflenet_0_5_from_1_0": (lambda **o: ShuffleNetV2(width_mult=0.5, reduced_tail=True, **o), "shufflenet_v2_x1_0"),
    "reduced_large_from_small": (lambda **o: MobileNetV3("large", reduced_tail=True, **o), "mobilenet_v3_small"),
    "shufflenet_from_mnv2": (lambda **o: ShuffleNetV2(**o), "mobilenet_v2"),
    "grey_input": (lambda **o: MobileNetV2(in_channels=1, **o), "mobilenet_v2"),
}


@pytest.mark.parametrize("case", sorted(OTHER_MODELS))
def test_a_file_of_another_model_or_width_is_one_line_naming_it(imagenet, case: str) -> None:
    build, name = OTHER_MODELS[case]
    path, _ = imagenet(name)
    with pytest.raises(ConfigurationError) as caught:
        build(weights=str(path))
    message = str(caught.value)
    assert "\n" not in message and f"weights file {path} " in message and "another model" in message
    assert "reduced_tail" not in message  # not the cause here, so not suggested
    assert "torchvision's" in message  # which files do fit


BAD_FILES = {
    "random_bytes": (lambda path: path.write_bytes(np.random.default_rng(0).bytes(2000)), ValueError, "not a PyTorch file"),
    "text": (lambda path: path.write_text("weights: imagenet\n"), ValueError, "not a PyTorch file"),
    "truncated": (
        lambda path: path.write_bytes(_state_dict_bytes()[:5000]), ValueError, "is not a readable PyTorch state dict"
    ),
    "whole_model": (
        lambda path: torch.save(torchvision.models.mobilenet_v3_small(), path),
        ValueError,
        "holds a pickled torchvision.models.mobilenetv3.MobileNetV3, not only tensors",
    ),
    "tensor": (lambda path: torch.save(torch.zeros(3), path), TypeError, "to be a state dict (a mapping of tensors), got Tensor"),
    "list": (lambda path: torch.save([torch.zeros(3)], path), TypeError, "got list"),
}


def _state_dict_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_that_is_not_a_state_dict_is_one_line_naming_it(tmp_path, kind: str) -> None:
    write, error, words = BAD_FILES[kind]
    path = tmp_path / f"{kind}.pth"
    write(path)
    with pytest.raises(error) as caught:
        MobileNetV3("small", weights=str(path))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("MobileNetV3: ") and str(path) in message and words in message
    if kind == "whole_model":
        assert "save model.state_dict() instead" in message


def test_a_missing_file_or_a_folder_is_named(tmp_path) -> None:
    missing = tmp_path / "mobilenet_v3_large-8738ca79.pth"
    with pytest.raises(InputNotFoundError, match=f"^MobileNetV3: weights file not found: {missing} does not exist") as caught:
        MobileNetV3(weights=str(missing))
    assert isinstance(caught.value, FileNotFoundError) and "--ckpt_path" in str(caught.value)
    with pytest.raises(InputNotFoundError, match=f"ShuffleNetV2: weights file not found: {tmp_path} is a folder"):
        ShuffleNetV2(weights=str(tmp_path))


@pytest.mark.parametrize("value", [3, ["a.pth"], b"a.pth"])
def test_weights_must_be_a_path(value) -> None:
    with pytest.raises(TypeError, match="^MobileNetV2: weights must be the path of a torchvision state dict file, got "):
        MobileNetV2(weights=value)  # type: ignore[arg-type]


def test_rebuilding_from_a_checkpoint_config_does_not_read_the_weights_file() -> None:
    backbone = {"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {"variant": "small", "weights": "/gone.pth"}}
    checkpoint = {
        "seglite_version": "0.2.0",
        "hyper_parameters": {"model": {"class_path": "seglite.models.LRASPP", "init_args": {"backbone": backbone}}},
    }
    config = model_config(checkpoint)
    assert config["init_args"]["backbone"]["init_args"] == {"variant": "small", "weights": None}
    assert backbone["init_args"]["weights"] == "/gone.pth"  # the checkpoint's record is left as it was


# ------------------------------------------------------------------ the command line and checkpoints


def test_yaml_config_initialises_from_imagenet_and_its_checkpoint_outlives_the_file(
    imagenet, tiny_cityscapes, tmp_path, monkeypatch, capsys
) -> None:
    """fit with ``weights: PATH`` in a config file, delete PATH, then test, predict and resume from the checkpoint."""
    source, reference = imagenet("mobilenet_v3_small")
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    weights_config = tmp_path / "imagenet.yaml"
    weights_config.write_text(yaml.safe_dump({"model": {"model": {"init_args": {
        "name": "lraspp_mobilenet_v3_small", "width_mult": 1.0, "reduced_tail": False, "weights": str(path),
    }}}}))
    reports: list[str] = []
    monkeypatch.setattr(cli_module, "rank_zero_info", reports.append)

    def args(name: str, *extra: str) -> list[str]:
        # the tiny settings choose width 0.25; the weights config comes after them
        return fit_args(run_config(tmp_path, name), tiny_cityscapes, f"--config={weights_config}", *extra)

    trained = run_cli(args("first", "--trainer.max_steps=2"))
    backbone = trained.model.model.backbone
    assert backbone.loaded_weights.source == str(path) and backbone.loaded_weights.skipped[0] == "classifier.0.weight"
    assert [line for line in reports if line.startswith("loaded ")] == [str(backbone.loaded_weights)]
    last = Path(trained.trainer.checkpoint_callback.last_model_path)
    saved = torch.load(last, map_location="cpu", weights_only=True)
    # the checkpoint's model config does not name the file: every way of rebuilding it works without it
    assert saved["hyper_parameters"]["model"]["init_args"]["weights"] is None
    assert trained.model.hparams["model"]["init_args"]["weights"] == str(path)  # the run's own
    trained_weights = {key: value.clone() for key, value in trained.model.model.state_dict().items()}
    # training moved the ImageNet weights (a check that the comparisons below are not trivially true)
    assert not torch.equal(trained_weights["backbone.stem.0.0.weight"], reference.state_dict()["features.0.0.weight"])

    os.remove(path)

    loaded = load_checkpoint(last)  # Predictor.from_checkpoint and tools/export.py rebuild through it
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, trained_weights[key], rtol=0, atol=0, msg=key)
    lightning_loaded = SegmentationTask.load_from_checkpoint(last, map_location="cpu")
    for key, value in lightning_loaded.model.state_dict().items():
        torch.testing.assert_close(value, trained_weights[key], rtol=0, atol=0, msg=key)
    mask = Predictor.from_checkpoint(last, backend="torch", cache_dir=None).predict(np.zeros((64, 96, 3), np.uint8))
    assert mask.shape == (64, 96)

    tested = run_cli(["test", *args("test")[1:], f"--ckpt_path={last}"])  # the config still names the deleted file
    assert tested.model.model.backbone.loaded_weights is None and "test" in tested.model.last_scores
    for key, value in tested.model.model.state_dict().items():
        torch.testing.assert_close(value, trained_weights[key], rtol=0, atol=0, msg=key)

    resumed = run_cli(args("resumed", "--trainer.max_steps=3", f"--ckpt_path={last}"))
    assert resumed.trainer.global_step == 3

    # without a checkpoint the missing file is one line, exit code 2
    capsys.readouterr()
    assert run(args("again", "--trainer.max_steps=1")) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and f"weights file not found: {path} does not exist" in error


def test_reduced_tail_config_with_imagenet_weights_is_one_line(imagenet, tiny_cityscapes, tmp_path, capsys) -> None:
    path, _ = imagenet("mobilenet_v3_small")
    code = run(fit_args(run_config(tmp_path, "reduced"), tiny_cityscapes, f"{OPTION}width_mult=1.0", f"{OPTION}weights={path}",
                        "--trainer.max_steps=1"))
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert f"weights file {path} does not fit" in error and FULL_TAIL_HINT in error
