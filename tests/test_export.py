"""ONNX and TorchScript export: parity with PyTorch for every head, metadata, refusals, tools/export.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_predictor import checkpoint, random_images  # noqa: F401  (fixtures, shared)

from seglite.apps import export as export_tool
from seglite.data.transforms import normalize_image
from seglite.errors import ModelLoadError, SegliteError
from seglite.inference import openvino as openvino_runtime
from seglite.inference.export import (
    TORCHSCRIPT_METADATA,
    ExportCheckError,
    OutputExistsError,
    export_metadata,
    export_onnx,
    export_torchscript,
    max_opset,
)
from seglite.inference.onnxruntime import onnxruntime_max_opset
from seglite.inference.predictor import Predictor
from seglite.models import build_model

# Lightning rebuilds models from checkpoints with a jsonargparse call that warns of its own deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")

HEADS = ["lraspp", "raspp", "deeplabv3", "deeplabv3plus"]
NAMES = [f"class{i}" for i in range(19)]
PALETTE = [[i, 2 * i, 3 * i] for i in range(19)]


def tiny_model(head: str = "lraspp", **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mobilenet_v3_small", head, num_classes=19, width_mult=0.5, **options).eval()


def inputs(sizes_and_batches) -> list[torch.Tensor]:
    """Normalised random images, batched."""
    batches = []
    for seed, (size, batch) in enumerate(sizes_and_batches):
        images = random_images([size] * batch, seed=seed)
        batches.append(torch.from_numpy(np.stack([normalize_image(image) for image in images])))
    return batches


def assert_matches(reference: torch.Tensor, exported: np.ndarray) -> None:
    assert exported.shape == tuple(reference.shape)
    assert np.abs(exported - reference.numpy()).max() < 1e-3
    assert (exported.argmax(1) == reference.argmax(1).numpy()).mean() >= 0.999


@pytest.mark.parametrize("head", HEADS)
def test_dynamic_onnx_matches_pytorch_at_two_sizes(tmp_path, head):
    model = tiny_model(head)
    path = tmp_path / "model.onnx"
    reports = export_onnx(model, path, (64, 96), dynamic=True)
    assert all(report.passed for report in reports)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert session.get_outputs()[0].shape == ["batch", 19, "height", "width"]
    for images in inputs([((61, 97), 2), ((80, 48), 1)]):
        with torch.inference_mode():
            reference = model(images)
        assert_matches(reference, session.run(None, {"image": images.numpy()})[0])


def test_static_onnx_metadata_and_predictor(tmp_path):
    model = tiny_model()
    path = tmp_path / "static.onnx"
    export_onnx(model, path, (64, 96), metadata=export_metadata(NAMES, PALETTE, None))
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    metadata = {entry.key: json.loads(entry.value) for entry in proto.metadata_props}
    assert metadata["seglite.class_names"] == NAMES and metadata["seglite.palette"] == PALETTE
    assert metadata["seglite.mean"] == [0.485, 0.456, 0.406] and metadata["seglite.std"] == [0.229, 0.224, 0.225]
    assert metadata["seglite.input_size"] == [64, 96]
    predictor = Predictor.from_onnx(path)
    assert predictor.size == (64, 96) and predictor.class_names == NAMES and predictor.palette == PALETTE
    image = random_images([(61, 97)])[0]
    mask = predictor.predict(image)
    assert mask.shape == (61, 97) and mask.dtype == np.uint8
    np.testing.assert_array_equal(predictor.predict_batch([image, image])[1], mask)  # fixed batch 1: run one by one
    reference = Predictor.from_model(model, size=(64, 96)).predict(image)
    assert (mask == reference).mean() >= 0.999
    with pytest.raises(ValueError, match="fixed input"):
        Predictor.from_onnx(path, size=(32, 48))
    export_onnx(model, tmp_path / "batch3.onnx", (64, 96), batch_size=3)
    fixed_batch = Predictor.from_onnx(tmp_path / "batch3.onnx")
    assert fixed_batch.batch_size == 3
    masks = fixed_batch.predict_batch([image] * 4)  # a batch of 3, then one image filled up to 3
    assert all(np.array_equal(mask, masks[0]) for mask in masks)
    assert (masks[0] == mask).mean() >= 0.999


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("method", ["script", "trace"])
def test_torchscript_loads_and_matches(tmp_path, method):
    model = tiny_model("deeplabv3plus")
    path = tmp_path / "model.pt"
    export_torchscript(model, path, (64, 96), metadata=export_metadata(NAMES, PALETTE, None), method=method)
    extra = {TORCHSCRIPT_METADATA: ""}
    loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    assert json.loads(extra[TORCHSCRIPT_METADATA])["seglite.class_names"] == NAMES
    for images in inputs([((61, 97), 2), ((64, 96), 1), ((33, 130), 1)]):
        with torch.inference_mode():
            assert_matches(model(images), loaded(images).numpy())
    assert isinstance(loaded, torch.jit.RecursiveScriptModule)
    # scripting compiles the methods (the padding's branch among them); a trace inlines one recorded run
    assert ("pad_input" in loaded.code) == (method == "script")


def test_existing_output_is_kept(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_onnx(tiny_model(), path, (32, 32))
    with pytest.raises(OutputExistsError):
        export_torchscript(tiny_model(), path, (32, 32))
    assert path.read_bytes() == b"keep me"
    export_onnx(tiny_model(), path, (32, 32), overwrite=True)
    assert onnx.load(str(path)).graph.output[0].name == "logits"
    with pytest.raises(SegliteError, match="does not exist"):
        export_onnx(tiny_model(), tmp_path / "missing" / "model.onnx", (32, 32))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(tiny_model(), tmp_path / "old.onnx", (32, 32), opset=13)


class Noisy(torch.nn.Module):
    """Logits that change on every call: no export can match them."""

    num_classes = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * 0 + torch.rand_like(images)


def test_failed_check_writes_nothing(tmp_path):
    path = tmp_path / "noisy.onnx"
    with pytest.raises(ExportCheckError, match="does not match PyTorch"):
        export_onnx(Noisy(), path, (16, 16))
    assert not path.exists() and not list(tmp_path.iterdir())


def test_window_pooled_lraspp_exports_with_dynamic_size(tmp_path):
    """The authors' 49x49 gate pool has no size-dependent branch or kernel, so one dynamic export is
    right at every size: under the window (pooled whole along a side) and over it (strided windows)."""
    model = tiny_model("lraspp", pool_kernel=(49, 49), pool_stride=(4, 5))
    export_onnx(model, tmp_path / "window.onnx", (64, 96), dynamic=True)  # checks parity at two sizes
    session = ort.InferenceSession(str(tmp_path / "window.onnx"), providers=["CPUExecutionProvider"])
    for images in inputs([((64, 96), 1), ((800, 880), 1)]):  # at OS16: 4x6 and 50x55 feature maps
        with torch.inference_mode():
            assert_matches(model(images), session.run(None, {"image": images.numpy()})[0])


def test_export_tool(checkpoint, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "model.onnx"
    arguments = [str(checkpoint), "--output", str(output), "--height", "64", "--width", "96", "--dynamic"]
    assert export_tool.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "check vs PyTorch" in printed and "ok" in printed and "FAILED" not in printed
    assert Predictor.from_onnx(output).class_names[0] == "road"
    assert export_tool.main(arguments) == 2
    assert "exists" in capsys.readouterr().err
    assert export_tool.main([str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "x.onnx")]) == 2
    assert "none.ckpt" in capsys.readouterr().err


def test_export_tool_int8(checkpoint, tmp_path, capsys):  # noqa: F811
    from seglite.data.synthetic import make_demo_dataset

    root = make_demo_dataset(tmp_path / "demo", num_train=2, num_val=2, num_test=0, size=(64, 96), video=False)
    output = tmp_path / "model.onnx"
    arguments = [str(checkpoint), "--output", str(output), "--height", "64", "--width", "96", "--int8", "--calibration-root", str(root)]
    assert export_tool.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "fp32" in printed and "int8" in printed and "mIoU" in printed
    int8 = Predictor.from_onnx(tmp_path / "model.int8.onnx")
    assert int8.class_names[0] == "road" and int8.size == (64, 96)
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(tmp_path / "model.int8.onnx")).graph.node)


needs_openvino = pytest.mark.skipif(not openvino_runtime.available(), reason="OpenVINO is not installed")


def test_exports_get_the_usual_permissions_and_never_replace_the_checkpoint(checkpoint, tmp_path, capsys):  # noqa: F811
    import os
    import stat

    output = tmp_path / "model.onnx"
    previous = os.umask(0o022)
    try:
        assert export_tool.main([str(checkpoint), "--output", str(output), "--height", "64", "--width", "96"]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    before = Path(checkpoint).read_bytes()
    assert export_tool.main([str(checkpoint), "--output", str(checkpoint), "--height", "64", "--width", "96", "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err and Path(checkpoint).read_bytes() == before
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "target.onnx")
    assert export_tool.main([str(checkpoint), "--output", str(link), "--height", "64", "--width", "96", "--overwrite"]) == 2
    assert "symbolic link" in capsys.readouterr().err and not (tmp_path / "target.onnx").exists()


@needs_openvino
def test_openvino_export_tool_and_predictor(checkpoint, tmp_path, capsys):  # noqa: F811
    output = tmp_path / "model.xml"
    arguments = [str(checkpoint), "--format", "openvino", "--output", str(output), "--height", "64", "--width", "96"]
    assert export_tool.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "openvino, any size, fp32" in printed and "masks agree" in printed and "FAILED" not in printed
    assert output.is_file() and output.with_suffix(".bin").is_file()
    predictor = Predictor.from_openvino(output)
    assert predictor.class_names[0] == "road" and predictor.description.startswith("openvino")
    reference = Predictor.from_checkpoint(checkpoint, backend="torch")
    for image in random_images([(61, 97), (40, 130)], seed=2):
        assert (predictor.predict(image) == reference.predict(image)).mean() >= 0.999
    assert export_tool.main(arguments) == 2 and "exists" in capsys.readouterr().err
    weights = output.with_suffix(".bin")
    data = weights.read_bytes()
    weights.write_bytes(data[:64])  # OpenVINO's reason is below its source-location lines: it is the one kept
    with pytest.raises(ModelLoadError, match=rf"^cannot read OpenVINO model {re.escape(str(output))}: Incorrect weights in bin file!$"):
        Predictor.from_openvino(output)
    weights.unlink()
    with pytest.raises(ModelLoadError, match=f"its weights file {re.escape(str(weights))} does not exist$"):
        Predictor.from_openvino(output)
    weights.write_bytes(data)
    with pytest.raises(SystemExit):
        export_tool.main([str(checkpoint), "--format", "openvino", "--output", str(tmp_path / "model.onnx")])
    with pytest.raises(SystemExit):
        export_tool.main([str(checkpoint), "--format", "openvino", "--precision", "int8", "--output", str(output)])
    assert "needs --calibration-root" in capsys.readouterr().err
    with pytest.raises(Exception, match="not a seglite segmenter"):
        onnx_path = tmp_path / "plain.onnx"
        export_onnx(tiny_model(), onnx_path, (32, 32))
        import openvino as ov

        ov.save_model(ov.Core().read_model(str(onnx_path)), str(tmp_path / "plain.xml"))
        Predictor.from_openvino(tmp_path / "plain.xml")


@needs_openvino
def test_openvino_int8_export_reports_its_miou_change(checkpoint, tmp_path, capsys):  # noqa: F811
    from seglite.data.synthetic import make_demo_dataset

    root = make_demo_dataset(tmp_path / "demo", num_train=3, num_val=2, num_test=0, size=(64, 96), video=False)
    output = tmp_path / "model.int8.xml"
    arguments = [str(checkpoint), "--format", "openvino", "--precision", "int8", "--output", str(output),
                 "--height", "64", "--width", "96", "--calibration-root", str(root), "--int8-scope", "no_depthwise"]
    assert export_tool.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "int8, 3 train images calibrate, scope no_depthwise" in printed
    assert "torch fp32" in printed and "openvino int8" in printed and "mIoU" in printed
    assert Predictor.from_openvino(output).description.startswith("openvino int8")


def test_opset_beyond_the_exporter_is_a_one_line_error(checkpoint, tmp_path, capsys):  # noqa: F811
    top = max_opset()
    assert top >= 17
    output = tmp_path / "op.onnx"
    for opset in (top + 1, 99):
        arguments = [str(checkpoint), "--output", str(output), "--opset", str(opset), "--height", "32", "--width", "64"]
        assert export_tool.main(arguments) == 2
        expected = f"--opset must be 17 to {top} (the ONNX opsets torch {torch.__version__} exports here), got {opset}"
        assert capsys.readouterr().err == f"export: error: {expected}\n"
    assert not output.exists()
    with pytest.raises(ValueError, match=f"opset must be 17 to {top}"):
        export_onnx(tiny_model(), output, (32, 32), opset=top + 1)
    checked = onnxruntime_max_opset(top)  # the export is checked in ONNX Runtime (1.16 loads up to 19)
    assert export_tool.main([str(checkpoint), "--output", str(output), "--opset", str(checked), "--height", "32", "--width", "64"]) == 0
    assert onnx.load(output).opset_import[0].version == checked


def test_opset_beyond_what_onnxruntime_loads_is_a_one_line_error(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    import onnxruntime

    from seglite.inference import onnxruntime as ort_engine

    assert ort_engine.onnxruntime_max_opset(17) == 17  # every supported onnxruntime loads the lowest opset
    monkeypatch.setattr(ort_engine, "onnxruntime_max_opset", lambda highest: min(highest, 17))  # as an old release
    output = tmp_path / "op.onnx"
    assert export_tool.main([str(checkpoint), "--output", str(output), "--opset", "18", "--height", "32", "--width", "64"]) == 2
    assert capsys.readouterr().err == (
        f"export: error: --opset 18: onnxruntime {onnxruntime.__version__} loads opsets up to 17, and the export is "
        "checked in it; pass --opset 17 or lower, or upgrade onnxruntime\n"
    )
    assert not output.exists()


def test_interrupted_export_says_what_was_written_and_leaves_no_partial_file(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    from seglite.inference import export as export_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    output = tmp_path / "model.onnx"
    small = ["--height", "32", "--width", "64"]
    monkeypatch.setattr(export_module, "export_checkpoint", interrupt)
    assert export_tool.main([str(checkpoint), "--output", str(output), *small]) == 130
    assert capsys.readouterr().err == "export: interrupted (nothing was written)\n"
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    # the ONNX file is complete when the int8 step is interrupted
    monkeypatch.setattr(export_tool, "quantize", interrupt)
    arguments = [str(checkpoint), "--output", str(output), "--int8", "--calibration-root", str(tmp_path), *small]
    assert export_tool.main(arguments) == 130
    assert capsys.readouterr().err == f"export: interrupted (wrote {output})\n"
    assert Predictor.from_onnx(output).class_names[0] == "road"
    assert sorted(tmp_path.iterdir()) == [output]


@needs_openvino
def test_interrupt_between_the_openvino_files_removes_the_weights(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    from seglite.inference import export as export_module

    real_write = export_module.write_bytes

    def write_then_interrupt(path, data, *args, **kwargs):
        real_write(path, data, *args, **kwargs)
        if Path(path).suffix == ".bin":
            raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "write_bytes", write_then_interrupt)
    output = tmp_path / "model.xml"
    arguments = [str(checkpoint), "--format", "openvino", "--output", str(output), "--height", "32", "--width", "64"]
    assert export_tool.main(arguments) == 130
    weights = output.with_suffix(".bin")
    assert capsys.readouterr().err == f"export: interrupted (nothing was written; removed the unpaired {weights})\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options, message",
    [
        (["--format", "torchscript", "--dynamic"], "--dynamic is for --format onnx; --format torchscript takes any size and batch"),
        (["--format", "openvino", "--batch-size", "2"], "--batch-size is for --format onnx; --format openvino takes any size"),
        (["--format", "openvino", "--opset", "18"], "--opset is for --format onnx, not --format openvino"),
        (["--dynamic", "--batch-size", "2"], "--batch-size fixes the batch of a static ONNX model"),
        (["--torchscript-method", "trace"], "--torchscript-method is for --format torchscript"),
        (["--int8-scope", "backbone"], "--int8-scope is for --format openvino --precision int8"),
        (["--format", "openvino", "--int8-scope", "backbone"], "--int8-scope is for --format openvino --precision int8"),
        (["--int8-output", "q.onnx"], "--int8-output is for --int8"),
        (["--calibration-root", "data"], "--calibration-root is for --int8 or --format openvino --precision bf16/int8"),
        (["--eval-limit", "3"], "--eval-limit needs --calibration-root DIR"),
    ],
)
def test_options_the_export_would_ignore_are_errors(tmp_path, capsys, options, message):
    suffix = {"torchscript": ".pt", "openvino": ".xml"}.get(options[1] if options[0] == "--format" else "", ".onnx")
    with pytest.raises(SystemExit) as exit_info:
        export_tool.parse_args(["last.ckpt", "--output", str(tmp_path / f"model{suffix}"), *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err.splitlines()[-1]  # the last line: the one-line error after the usage
    args = export_tool.parse_args(["last.ckpt", "--output", "m.onnx"])  # defaults fill in when not given
    assert (args.opset, args.batch_size, args.int8_scope, args.torchscript_method) == (17, 1, "all", "script")


@pytest.mark.parametrize("disk", ["read-only", "full"])
@pytest.mark.parametrize("export_format", ["onnx", "torchscript", pytest.param("openvino", marks=needs_openvino)])
def test_a_read_only_or_full_output_folder_is_a_one_line_error(checkpoint, mount_tmpfs, capsys, export_format, disk):  # noqa: F811
    folder = mount_tmpfs(64, read_only=disk == "read-only")  # a real file system: the models are hundreds of kB
    output = folder / {"onnx": "model.onnx", "torchscript": "model.pt", "openvino": "model.xml"}[export_format]
    arguments = [str(checkpoint), "--format", export_format, "--output", str(output), "--height", "32", "--width", "64"]
    assert export_tool.main(arguments) == 2
    reason = "read-only file system" if disk == "read-only" else "disk full"
    assert capsys.readouterr().err == f"export: error: cannot write {output}: {reason}\n"
    assert list(folder.iterdir()) == []  # no partial file, no temporary folder
