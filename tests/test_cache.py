"""The conversion cache: altered entries are found by their recorded SHA-256 and rebuilt; a cache that
cannot be written (a real full disk) is skipped, whatever the runtime raises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seglite.inference import openvino
from seglite.inference.predictor import Predictor

needs_openvino = pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=needs_openvino)]


def images(count: int, size=(40, 72), seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, size=(*size, 3), dtype=np.uint8) for _ in range(count)]


def largest_onnx_weights(path: Path) -> tuple[int, int]:
    """``(offset, length)`` in the file of the raw bytes of its largest initializer (a convolution's weights)."""
    import onnx

    data = path.read_bytes()
    tensor = max(onnx.load_from_string(data).graph.initializer, key=lambda tensor: len(tensor.raw_data))
    offset = data.find(tensor.raw_data)
    assert offset > 0 and len(tensor.raw_data) > 64
    return offset, len(tensor.raw_data)


def largest_ir_weights(xml: Path) -> tuple[int, int]:
    """``(offset, length)`` in the ``.bin`` of an OpenVINO IR of its largest int8 constant (quantised weights)."""
    import re

    found = re.findall(r'element_type="i8" shape="[^"]*" offset="(\d+)" size="(\d+)"', xml.read_text())
    offset, length = max(((int(offset), int(size)) for offset, size in found), key=lambda entry: entry[1])
    assert length > 64
    return offset, length


def flip_bytes(path: Path, offset: int, length: int) -> None:
    """Invert ``length`` bytes at ``offset``: the file keeps its size and structure and still loads."""
    data = bytearray(path.read_bytes())
    data[offset : offset + length] = bytes(255 - value for value in data[offset : offset + length])
    path.write_bytes(bytes(data))


def cached(cache: Path, suffix: str) -> Path:
    (entry,) = cache.glob(f"*{suffix}")
    return entry


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_altered_entry_that_still_loads_is_found_and_rebuilt(tiny_checkpoint, tmp_path, capsys, backend):
    cache = tmp_path / "cache"
    reference = Predictor.from_checkpoint(tiny_checkpoint, backend=backend, precision="fp32", cache_dir=cache)
    entry = cached(cache, ".onnx")
    good = entry.read_bytes()
    offset, length = largest_onnx_weights(entry)
    flip_bytes(entry, offset, length)
    capsys.readouterr()
    again = Predictor.from_checkpoint(tiny_checkpoint, backend=backend, precision="fp32", cache_dir=cache)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"discarded the damaged cache entry {entry} (" in err
    assert "SHA-256" in err and "rebuilding it from the checkpoint" in err
    assert entry.read_bytes() == good  # rebuilt in place, with its hash
    for image in images(3):
        np.testing.assert_array_equal(again.predict(image), reference.predict(image))
    Predictor.from_checkpoint(tiny_checkpoint, backend=backend, precision="fp32", cache_dir=cache)
    assert capsys.readouterr().err == ""  # a verified entry is used quietly


def test_an_entry_without_its_hash_is_unverified_and_rebuilt(tiny_checkpoint, tmp_path, capsys):
    cache = tmp_path / "cache"
    Predictor.from_checkpoint(tiny_checkpoint, backend="onnxruntime", cache_dir=cache)
    entry = cached(cache, ".onnx")
    hashes = cached(cache, ".sha256")
    assert hashes.read_text() == f"{__import__('hashlib').sha256(entry.read_bytes()).hexdigest()}  {entry.name}\n"
    hashes.unlink()  # as an entry of an older seglite, or one whose hash was lost
    capsys.readouterr()
    Predictor.from_checkpoint(tiny_checkpoint, backend="onnxruntime", cache_dir=cache)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"discarded the damaged cache entry {entry} (no SHA-256 recorded" in err
    assert hashes.is_file()
    Predictor.from_checkpoint(tiny_checkpoint, backend="onnxruntime", cache_dir=cache)
    assert capsys.readouterr().err == ""


@needs_openvino
def test_altered_int8_weights_are_found_and_quantised_again(tiny_checkpoint, tmp_path, capsys):
    calibration = images(4, (64, 96), seed=3)
    cache = tmp_path / "cache"

    def int8() -> Predictor:
        return Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", precision="int8",
                                         calibration_images=calibration, cache_dir=cache)

    reference = int8()
    weights = cached(cache, ".bin")
    good = weights.read_bytes()
    flip_bytes(weights, *largest_ir_weights(weights.with_suffix(".xml")))  # the IR still loads
    capsys.readouterr()
    again = int8()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"discarded the damaged cache entry {weights.with_suffix('.xml')} (" in err
    assert weights.read_bytes() == good
    for image in images(3, (61, 97), seed=4):
        np.testing.assert_array_equal(again.predict(image), reference.predict(image))


@needs_openvino
def test_int8_with_a_full_cache_disk_runs_without_a_cache(tiny_checkpoint, mount_tmpfs, capsys):
    cache = mount_tmpfs(64)  # a real, full disk: the graphs are hundreds of kB
    calibration = images(4, (64, 96), seed=3)
    predictor = Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", precision="int8",
                                          calibration_images=calibration, cache_dir=cache)
    assert predictor.description.startswith("openvino int8")
    assert predictor.predict(images(1)[0]).shape == (40, 72)
    assert [path.name for path in cache.iterdir()] == []  # nothing half-written is left
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "full"])
def test_a_cache_that_cannot_be_written_is_skipped(tiny_checkpoint, mount_tmpfs, capsys, read_only):
    cache = mount_tmpfs(64, read_only=read_only)
    predictor = Predictor.from_checkpoint(tiny_checkpoint, backend="onnxruntime", cache_dir=cache)
    reference = Predictor.from_checkpoint(tiny_checkpoint, backend="torch")
    image = images(1)[0]
    assert (predictor.predict(image) == reference.predict(image)).mean() >= 0.999
    assert list(cache.iterdir()) == [] and capsys.readouterr().err == ""
