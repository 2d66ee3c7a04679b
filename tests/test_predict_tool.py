"""tools/predict.py: files, folders and globs in; mask PNGs and overlays out; no silent overwrite; clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_predictor import checkpoint, random_images  # noqa: F401  (fixtures, shared)

from seglite.apps import predict as predict_tool
from seglite.data import CITYSCAPES_PALETTE
from seglite.inference.predictor import Predictor

# Lightning rebuilds models from checkpoints with a jsonargparse call that warns of its own deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")


@pytest.fixture()
def images(tmp_path) -> Path:
    """Two images in a folder with a sub-folder: a.png (61x97) and sub/b.jpg (40x64)."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    first, second = random_images([(61, 97), (40, 64)])
    cv2.imwrite(str(folder / "a.png"), first[..., ::-1])
    cv2.imwrite(str(folder / "sub" / "b.jpg"), second[..., ::-1])
    return folder


def listed_outputs(folder: Path) -> list[str]:
    """The files the manifest of ``folder`` lists as seglite's."""
    return json.loads((folder / ".seglite-outputs.json").read_text())["files"]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def test_folder_to_masks_and_overlays(checkpoint, images, tmp_path):  # noqa: F811
    output = tmp_path / "out"
    assert predict_tool.main([str(images), "--checkpoint", str(checkpoint), "--output", str(output)]) == 0
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*.png"))
    assert written == ["a_mask.png", "a_overlay.png", "sub/b_mask.png", "sub/b_overlay.png"]
    mask = cv2.imread(str(output / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    image = read_rgb(images / "a.png")
    expected = Predictor.from_checkpoint(checkpoint).predict(image)
    assert mask.dtype == np.uint8 and mask.ndim == 2
    np.testing.assert_array_equal(mask, expected)
    overlay = read_rgb(output / "a_overlay.png").astype(int)
    blended = (image.astype(int) + CITYSCAPES_PALETTE[expected].astype(int)) / 2
    assert np.abs(overlay - blended).max() <= 1


def test_file_and_glob_with_colour_onnx_and_size(checkpoint, images, tmp_path):  # noqa: F811
    onnx_path = tmp_path / "model.onnx"
    output = tmp_path / "out"
    arguments = [str(images / "a.png"), str(images / "sub" / "*.jpg"), "--checkpoint", str(checkpoint), "--backend", "onnxruntime",
                 "--onnx", str(onnx_path), "--size", "32", "48", "--color", "--no-overlay", "--output", str(output)]
    assert predict_tool.main(arguments) == 0
    assert sorted(path.name for path in output.glob("*.png")) == ["a_mask.png", "b_mask.png"]
    assert (output / ".seglite-outputs.json").is_file()  # the manifest of what seglite wrote
    colours = read_rgb(output / "b_mask.png")
    assert colours.shape == (40, 64, 3)
    assert {tuple(c) for c in colours.reshape(-1, 3)} <= {tuple(c) for c in CITYSCAPES_PALETTE.tolist()}
    # the ONNX file exported on the way serves on its own
    assert predict_tool.main([str(images / "a.png"), "--onnx", str(onnx_path), "--output", str(tmp_path / "again")]) == 0


def test_refuses_to_overwrite(checkpoint, images, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "out"
    arguments = [str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(output)]
    assert predict_tool.main(arguments) == 0
    first = (output / "a_mask.png").read_bytes()
    (output / "a_mask.png").write_bytes(b"edited by hand")
    assert predict_tool.main(arguments) == 2
    message = capsys.readouterr().err
    assert "a_mask.png" in message and "--overwrite" in message
    assert (output / "a_mask.png").read_bytes() == b"edited by hand"
    # seglite's own outputs (listed in the folder's manifest) are replaced when asked
    assert predict_tool.main(arguments + ["--overwrite"]) == 0
    assert (output / "a_mask.png").read_bytes() == first


def test_overwrite_never_replaces_files_seglite_did_not_write(checkpoint, images, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "out"
    output.mkdir()
    (output / "a_mask.png").write_bytes(b"a user's own file")
    arguments = [str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(output), "--overwrite"]
    assert predict_tool.main(arguments) == 2
    message = capsys.readouterr().err
    assert "not written by seglite" in message and "a_mask.png" in message
    assert (output / "a_mask.png").read_bytes() == b"a user's own file"
    assert not (output / "a_overlay.png").exists()


def test_never_writes_through_links(checkpoint, images, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "out"
    arguments = [str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(output), "--no-overlay"]
    assert predict_tool.main(arguments) == 0
    target = tmp_path / "precious.png"
    target.write_bytes(b"precious")
    (output / "a_mask.png").unlink()
    (output / "a_mask.png").symlink_to(target)
    assert predict_tool.main(arguments + ["--overwrite"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"
    # nor into a linked output folder
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    assert predict_tool.main([str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(linked)]) == 2
    assert not any((tmp_path / "elsewhere").iterdir())


def test_output_inside_input_is_not_segmented_again(checkpoint, images, tmp_path):  # noqa: F811
    output = images / "predictions"
    arguments = [str(images), "--checkpoint", str(checkpoint), "--output", str(output)]
    assert predict_tool.main(arguments) == 0
    assert predict_tool.main(arguments + ["--overwrite"]) == 0
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*.png"))
    assert written == ["a_mask.png", "a_overlay.png", "sub/b_mask.png", "sub/b_overlay.png"]


def test_output_that_is_the_input_is_refused(checkpoint, images, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "out"
    output.mkdir()
    os.link(images / "a.png", output / "a_mask.png")  # a hard link: the same file under the output's name
    before = (images / "a.png").read_bytes()
    arguments = [str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(output), "--overwrite"]
    assert predict_tool.main(arguments) == 2
    assert "a_mask.png" in capsys.readouterr().err
    assert (images / "a.png").read_bytes() == before


@pytest.mark.parametrize("model", [["--checkpoint", "nothere.ckpt"], ["--onnx", "broken.onnx"]])
def test_a_failed_run_claims_nothing_and_leaves_no_folder(checkpoint, images, tmp_path, capsys, model):  # noqa: F811
    (tmp_path / "broken.onnx").write_bytes(b"not an ONNX model")
    model = [model[0], str(tmp_path / model[1])]
    output = tmp_path / "new" / "out"
    assert predict_tool.main([str(images / "a.png"), *model, "--output", str(output)]) == 2
    assert model[1] in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the folders it made are gone again
    # in a folder that exists, nothing is claimed: a user's file under an output's name stays theirs
    output.mkdir(parents=True)
    assert predict_tool.main([str(images / "a.png"), *model, "--output", str(output)]) == 2
    assert output.is_dir() and not any(output.iterdir())
    (output / "a_mask.png").write_bytes(b"a user's file")
    arguments = [str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", str(output), "--overwrite"]
    assert predict_tool.main(arguments) == 2
    assert "not written by seglite" in capsys.readouterr().err
    assert (output / "a_mask.png").read_bytes() == b"a user's file"


def test_a_run_failing_half_way_claims_what_it_wrote(checkpoint, images, tmp_path, capsys):  # noqa: F811
    (images / "z_broken.png").write_bytes(b"not a png")  # read after a.png
    output = tmp_path / "out"
    arguments = [str(images / "a.png"), str(images / "z_broken.png"), "--checkpoint", str(checkpoint), "--output", str(output)]
    assert predict_tool.main([*arguments, "--batch", "1"]) == 2
    assert "z_broken.png" in capsys.readouterr().err
    assert listed_outputs(output) == ["a_mask.png", "a_overlay.png"]
    assert sorted(path.name for path in output.glob("*.png")) == ["a_mask.png", "a_overlay.png"]


def test_images_seglite_wrote_are_not_segmented_again(checkpoint, images, tmp_path, capsys):  # noqa: F811
    # earlier outputs beside the images, listed in the folder's manifest (e.g. an earlier --output images)
    model = ["--checkpoint", str(checkpoint)]
    assert predict_tool.main([str(images), *model, "--output", str(tmp_path / "first")]) == 0
    for path in (tmp_path / "first").rglob("*"):
        target = images / path.relative_to(tmp_path / "first")
        if path.is_file():
            target.write_bytes(path.read_bytes())
    capsys.readouterr()
    output = tmp_path / "out"
    assert predict_tool.main([str(images), *model, "--output", str(output)]) == 0
    assert "skipped 4 image(s)" in capsys.readouterr().out
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*.png"))
    assert written == ["a_mask.png", "a_overlay.png", "sub/b_mask.png", "sub/b_overlay.png"]
    # a glob skips them too; a file named on its own is taken
    assert predict_tool.main([str(images / "*.png"), *model, "--output", str(tmp_path / "glob")]) == 0
    assert "skipped 2 image(s)" in capsys.readouterr().out
    assert sorted(path.name for path in (tmp_path / "glob").glob("*.png")) == ["a_mask.png", "a_overlay.png"]
    # a folder of nothing but seglite's outputs says so
    assert predict_tool.main([str(tmp_path / "first"), *model, "--output", str(tmp_path / "again")]) == 2
    assert "were all written by seglite" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("as_glob", [False, True])
def test_input_folder_as_output_is_named_as_the_cause(checkpoint, images, capsys, as_glob):  # noqa: F811
    source = str(images / "*.png") if as_glob else str(images)
    assert predict_tool.main([source, "--checkpoint", str(checkpoint), "--output", str(images)]) == 2
    message = capsys.readouterr().err
    expected = "lie in the output folder" if as_glob else "is also the output folder"
    assert expected in message and "give another --output" in message and len(message.strip().splitlines()) == 1
    assert not (images / ".seglite-outputs.json").exists()


def test_empty_output_is_refused(checkpoint, images, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        predict_tool.main([str(images / "a.png"), "--checkpoint", str(checkpoint), "--output", ""])
    assert exit_info.value.code == 2
    assert "argument --output: expected a folder path, got an empty string" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("case", ["missing", "empty glob", "empty folder", "unreadable", "output is a file", "missing model"])
def test_errors_name_the_culprit(checkpoint, images, tmp_path, capsys, case):  # noqa: F811
    inputs, output, model = [str(images)], tmp_path / "out", ["--checkpoint", str(checkpoint)]
    if case == "missing":
        inputs, culprit = [str(images / "nope.png")], "nope.png"
    elif case == "empty glob":
        inputs, culprit = [str(images / "*.tif")], "*.tif"
    elif case == "empty folder":
        (tmp_path / "void").mkdir()
        inputs, culprit = [str(tmp_path / "void")], "void"
    elif case == "unreadable":
        (images / "broken.png").write_bytes(b"not a png")
        culprit = "broken.png"
    elif case == "output is a file":
        output.write_text("a file")
        culprit = str(output)
    else:
        model, culprit = ["--onnx", str(tmp_path / "absent.onnx")], "absent.onnx"
    assert predict_tool.main([*inputs, *model, "--output", str(output)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("predict: error:") and culprit in message and "Traceback" not in message


@pytest.mark.parametrize("tool_name", ["predict", "infer_video"])
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ([], "give the model: --checkpoint CKPT, --onnx MODEL, --openvino MODEL.xml or --model MODEL.pte/.tflite"),
        (["--checkpoint", "a.ckpt", "--openvino", "a.xml"], "give one model"),
        (["--onnx", "a.onnx", "--openvino", "a.xml"], "give one model"),
        (["--checkpoint", "a.ckpt", "--onnx", "a.onnx", "--backend", "torch"], "--onnx runs in onnxruntime: drop --backend torch"),
        (["--onnx", "a.onnx", "--backend", "openvino"], "--onnx runs in onnxruntime"),
        (["--checkpoint", "a.ckpt", "--size", "0", "5"], "argument --size: expected a positive integer, got '0'"),
        (["--checkpoint", "a.ckpt", "--batch", "0"], "argument --batch: expected a positive integer, got '0'"),
    ],
)
def test_both_tools_check_the_model_options_alike(tool_name, model, message, capsys):
    """One definition and one check of the model options (seglite.apps.model_options) for both tools."""
    import importlib

    tool = importlib.import_module(f"seglite.apps.{tool_name}")
    positional = ["in.png", "--output", "out"] if tool_name == "predict" else ["in.mp4", "out.mp4"]
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args([*positional, *model])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_phone_photo_is_segmented_as_viewers_show_it(checkpoint, tmp_path):  # noqa: F811
    # prediction has no mask to stay aligned with: the EXIF orientation is applied (training pairs ignore it)
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.fromarray(random_images([(40, 64)])[0])
    exif = photo.getexif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view", as phones write
    photo.save(folder / "phone.jpg", exif=exif, quality=95)
    output = tmp_path / "out"
    assert predict_tool.main([str(folder / "phone.jpg"), "--checkpoint", str(checkpoint), "--backend", "torch",
                              "--output", str(output)]) == 0
    stored = cv2.imread(str(folder / "phone.jpg"), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    shown = cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE)
    mask = cv2.imread(str(output / "phone_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 40)
    np.testing.assert_array_equal(mask, Predictor.from_checkpoint(checkpoint, backend="torch").predict(shown))
    assert read_rgb(output / "phone_overlay.png").shape == (64, 40, 3)
