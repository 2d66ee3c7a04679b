"""Segment RGB images with a trained checkpoint or an exported model, on the fastest backend available.

``Predictor.from_checkpoint(ckpt).predict(image)`` takes an ``(H, W, 3)`` uint8 RGB image and
returns ``(H, W)`` uint8 train ids. Every backend computes the same thing: ImageNet
normalisation, an optional bilinear resize to ``size``, the network, logits resized bilinearly
back to the image, argmax. On the fast backends all of it runs inside the runtime as one graph
(``seglite.inference.graph.SegmenterGraph``).

``backend="auto"`` (the default) on a CPU times the installed runtimes on the model the first
time it is loaded on a machine (OpenVINO in bf16 where the CPU computes bf16, else fp32; ONNX
Runtime fp32: ``seglite.inference.choice``), takes the fastest, and keeps that choice with its
figures in the cache; with neither runtime installed it is PyTorch, and on a GPU PyTorch.
``backend="torch"`` is the exact fp32 reference. :attr:`Predictor.description` says what was chosen and why.
int8 is opt-in (``precision="int8"`` with calibration images): its calibration is per model.

Importing this module imports neither ONNX, ONNX Runtime nor OpenVINO; a backend imports its
runtime when it is made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from seglite.checkpoints import CheckpointModel, load_checkpoint
from seglite.checks import check_choice, check_image, check_positive_int
from seglite.checks import check_size as _check_size
from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.errors import ModelLoadError, SegliteError
from seglite.files import CACHE_ENVIRONMENT, cache_dir, require_file  # noqa: F401  (CACHE_ENVIRONMENT: a name of seglite 0.2)
from seglite.files import InputNotFoundError as ModelFileNotFoundError  # noqa: F401  (the name of seglite 0.1)
from seglite.inference.cache import ConversionCache
from seglite.inference.choice import backend_candidates
from seglite.inference.engine import Engine
from seglite.inference.graph import CoarseMasks, normalize, resize_image
from seglite.inference.metadata import (  # noqa: F401  (names of seglite 0.1, imported from here by users)
    INPUT_NAME,
    META_CHECKPOINT_SHA256,
    META_CLASS_NAMES,
    META_GRAPH,
    META_INPUT_SIZE,
    META_MEAN,
    META_OUTPUT_STRIDE,
    META_PALETTE,
    META_PRECISION,
    META_STD,
    OUTPUT_NAME,
    Size,
    export_metadata,
)
from seglite.inference.options import BACKENDS, PRECISIONS, Backend, Int8Scope, Precision

__all__ = ["FixedInputSizeError", "Predictor", "default_cache_dir", "load_task"]


class FixedInputSizeError(SegliteError, ValueError):
    """A size was asked of an ONNX model exported for another fixed input size."""

    def __init__(self, message: str, size: Size, input_size: Size) -> None:
        super().__init__(message)
        self.size, self.input_size = size, input_size


def load_task(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> CheckpointModel:
    """The model of a training checkpoint with ``model``, ``class_names``, ``palette``, ``num_classes``.

    Kept for code written against seglite 0.1 (which returned the Lightning task); it is
    :func:`seglite.checkpoints.load_checkpoint` and needs no Lightning.
    """
    loaded = load_checkpoint(checkpoint)
    loaded.model.to(map_location)
    return loaded


def check_size(size: Sequence[int] | None, name: str = "size") -> Size | None:
    """``size`` as ``(height, width)`` of positive ints, or ``None`` (``seglite.checks.check_size``)."""
    return _check_size(name, size, allow_none=True)


def default_cache_dir() -> Path:
    """Where converted models are kept: seglite's cache folder (:func:`seglite.files.cache_dir`)."""
    return cache_dir()


class Predictor:
    """Train-id masks of RGB images, at each image's own resolution.

    Build it with :meth:`from_checkpoint`, :meth:`from_onnx`, :meth:`from_openvino`, :meth:`from_executorch`,
    :meth:`from_litert` or :meth:`from_model`.

    Args:
        engine: runs the model (``seglite.inference.engine.Engine``: ``TorchEngine``,
            ``OnnxEngine``, ``OpenVinoEngine``, ``ExecuTorchEngine``, ``LiteRtEngine``).
        num_classes: classes the model predicts (at most 255: masks are uint8).
        class_names, palette: for legends and colour masks; default: the class index and no palette.
        size: ``(height, width)`` images are resized to before the model; ``None`` runs each
            image at its own size. The engine has it built in (it must be the same).
        batch_size: most images per model call in :meth:`predict_batch`.
        mean, std: normalisation the model expects; must be those of training
            (``seglite.data.constants``), checked so a model exported otherwise is not silently misread.
    """

    def __init__(
        self,
        engine: Engine,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        size: Size | None = None,
        batch_size: int = 8,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if not 0 < num_classes <= 255:
            raise ValueError(f"num_classes must be 1-255 (masks are uint8 with 255 for ignore), got {num_classes}")
        check_positive_int("batch_size", batch_size)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but the model predicts {num_classes} classes")
        if not (np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD)):
            raise ValueError(
                f"the model expects mean {list(mean)} and std {list(std)}, but seglite preprocessing "
                f"normalises with {list(IMAGENET_MEAN)} and {list(IMAGENET_STD)}"
            )
        self.size = check_size(size)
        self.engine = engine
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.palette = [list(map(int, color)) for color in palette] if palette is not None else None
        self.batch_size = batch_size

    @property
    def description(self) -> str:
        """What runs the model, e.g. ``"openvino bf16, 2 threads (auto)"``: the tools print it."""
        return self.engine.description

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        size: Size | None = None,
        device: str = "cpu",
        channels_last: bool = False,
        batch_size: int = 8,
    ) -> Predictor:
        """A PyTorch predictor over a model in memory (``SegmentationModel`` or any module returning logits at input size)."""
        from seglite.inference.torch_engine import TorchEngine

        size = check_size(size)
        return cls(TorchEngine(model, device, channels_last, size), model.num_classes, class_names, palette, size, batch_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        backend: Backend = "auto",
        size: Size | None = None,
        onnx_path: str | Path | None = None,
        channels_last: bool = False,
        batch_size: int = 8,
        *,
        precision: Precision = "auto",
        num_threads: int | None = None,
        calibration_images: Sequence[np.ndarray] | None = None,
        int8_scope: Int8Scope = "all",
        cache_dir: str | Path | None = "default",
    ) -> Predictor:
        """A predictor from a training checkpoint of ``seglite fit`` / ``tools/train.py`` (no Lightning needed).

        Args:
            path: the ``.ckpt`` file.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
            backend: ``"auto"`` (the fastest, measured: see the module docstring), ``"torch"`` (exact fp32 reference),
                ``"onnxruntime"`` or ``"openvino"``.
            size: inference ``(height, width)``; ``None``: each image's own size.
            onnx_path: with ``backend="onnxruntime"``, an ONNX logits file of this checkpoint
                (``tools/export.py``'s format): used when it exists (it must have been exported
                from this checkpoint), exported there (dynamic size) when it does not.
            channels_last: channels-last memory format for the torch backend.
            batch_size: most images per model call in :meth:`predict_batch`.
            precision: ``"auto"`` (bf16 where the CPU computes it, else fp32), ``"fp32"``,
                ``"bf16"`` or ``"int8"`` (OpenVINO only; needs ``calibration_images``).
            num_threads: inference threads; default ``OMP_NUM_THREADS`` when set, else
                ``torch.get_num_threads()`` (the physical cores unless changed).
            calibration_images: RGB uint8 images (a few dozen training images) for int8.
            int8_scope: what int8 quantises: ``"all"``, ``"no_depthwise"`` or ``"backbone"``.
            cache_dir: folder for converted graphs (keyed by the checkpoint's SHA-256 and the
                settings); ``"default"``: :func:`default_cache_dir`; ``None``: no cache.
        """
        check_choice("backend", backend, BACKENDS)
        check_choice("precision", precision, PRECISIONS)
        size = check_size(size)
        if precision == "int8" and not calibration_images:
            raise ValueError("precision='int8' needs calibration_images (a few dozen training images)")
        if num_threads is not None:
            check_positive_int("num_threads", num_threads)
        if backend == "auto" and onnx_path is not None:
            backend = "onnxruntime"
        candidates, note = backend_candidates(backend, device, precision)
        loaded = load_checkpoint(path)
        if onnx_path is not None:
            return cls._from_onnx_file(loaded, Path(onnx_path), device, size, batch_size, num_threads)
        from seglite.inference.checkpoint_engine import EngineSettings, checkpoint_engine

        folder = None if cache_dir is None else default_cache_dir() if cache_dir == "default" else Path(cache_dir)
        settings = EngineSettings(device, size, channels_last, num_threads, calibration_images, int8_scope)
        engine = checkpoint_engine(loaded, candidates, note, settings, ConversionCache(folder, loaded.sha256), precision)
        return cls(engine, loaded.num_classes, loaded.class_names, loaded.palette, size, batch_size)

    @classmethod
    def _from_onnx_file(
        cls, loaded: CheckpointModel, onnx_path: Path, device: str, size: Size | None, batch_size: int, num_threads: int | None
    ) -> Predictor:
        """``from_checkpoint`` with ``onnx_path``: a logits file of this checkpoint, exported there if missing."""
        from seglite.inference.export import export_onnx
        from seglite.inference.onnxruntime import OnnxEngine

        if onnx_path.exists():
            require_file(onnx_path, "ONNX model")  # a folder is named as one, not parsed
            recorded = OnnxEngine.from_logits_file(onnx_path, num_threads=num_threads).logits_file.metadata.get(META_CHECKPOINT_SHA256)
            if recorded != loaded.sha256:
                raise ModelLoadError(
                    f"{onnx_path} was not exported from {loaded.path} (its recorded checkpoint differs); "
                    "delete it or pass another onnx_path"
                )
        else:
            metadata = export_metadata(loaded.class_names, loaded.palette, None, loaded.sha256)
            export_onnx(loaded.model, onnx_path, size or (256, 512), dynamic=True, metadata=metadata, inputs=[loaded.path])
        return cls.from_onnx(onnx_path, device, size, batch_size, num_threads)

    @classmethod
    def from_onnx(
        cls,
        path: str | Path | bytes,
        device: str = "cpu",
        size: Size | None = None,
        batch_size: int = 8,
        num_threads: int | None = None,
    ) -> Predictor:
        """A predictor running an ONNX file written by ``tools/export.py`` (or its bytes) in ONNX Runtime.

        Class names, palette and normalisation come from the file's metadata. A model exported
        with a static size runs at that size (``size`` must then be ``None`` or equal to it).
        Pre- and post-processing run in NumPy/PyTorch (the file holds the network alone).
        """
        from seglite.inference.onnxruntime import OnnxEngine

        if not isinstance(path, bytes):
            path = require_file(path, "ONNX model")
        size = check_size(size)
        engine = OnnxEngine.from_logits_file(path, device, num_threads, size)
        exported = engine.logits_file
        if exported.input_size is not None:
            if size is not None and size != exported.input_size:
                raise FixedInputSizeError(
                    f"size={size} but the ONNX model was exported for a fixed input of {exported.input_size}; "
                    "pass size=None or export with --dynamic",
                    size,
                    exported.input_size,
                )
            size = exported.size = exported.input_size
            height, width = size
            engine.description += f", fixed input {height}x{width}: images are resized to it"
        if exported.batch_size is not None:
            batch_size = min(batch_size, exported.batch_size)
        meta = exported.metadata
        return cls(
            engine,
            exported.num_classes,
            meta.get(META_CLASS_NAMES),
            meta.get(META_PALETTE),
            size,
            batch_size,
            meta.get(META_MEAN, IMAGENET_MEAN),
            meta.get(META_STD, IMAGENET_STD),
        )

    @classmethod
    def from_openvino(
        cls,
        path: str | Path,
        batch_size: int = 8,
        num_threads: int | None = None,
        precision: Literal["auto", "fp32", "bf16"] = "auto",
    ) -> Predictor:
        """A predictor running an OpenVINO IR written by ``tools/export.py --format openvino``.

        The IR is the whole segmenter (uint8 image of any size in, mask out); class names and
        palette come from its ``rt_info``. ``precision="auto"`` runs bf16 where the CPU
        computes it (an int8 IR runs its quantised layers in int8 either way).
        """
        from seglite.inference import openvino

        check_choice("precision", precision, ("auto", "fp32", "bf16"))
        xml = require_file(path, "OpenVINO model")
        if not openvino.available():
            raise SegliteError(f"{xml} needs OpenVINO: pip install seglite[openvino]")
        model = openvino.read_ir(xml)
        meta = openvino.get_metadata(model)
        if meta.get(META_GRAPH) not in ("segmenter", "coarse"):
            raise ModelLoadError(f"{xml} is not a seglite segmenter (export it with tools/export.py --format openvino)")
        coarse = CoarseMasks(int(meta[META_OUTPUT_STRIDE])) if meta.get(META_GRAPH) == "coarse" else None
        if precision == "auto":
            precision = "bf16" if meta.get(META_PRECISION) != "fp32" and openvino.cpu_has_bf16() else "fp32"
        int8 = meta.get(META_PRECISION) == "int8"
        engine = openvino.OpenVinoEngine(model, precision, num_threads, int8=int8, coarse=coarse)
        names = meta.get(META_CLASS_NAMES)
        if not names:
            raise ModelLoadError(f"{xml} has no class names in its metadata; export it with tools/export.py --format openvino")
        return cls(engine, len(names), names, meta.get(META_PALETTE), None, batch_size)

    @classmethod
    def from_executorch(cls, path: str | Path, batch_size: int = 8, num_threads: int | None = None) -> Predictor:
        """A predictor running an ExecuTorch ``.pte`` of ``tools/export.py --format executorch`` (XNNPACK, as on a phone).

        The file has a fixed input size: other images are resized to it and their masks back.
        ExecuTorch's thread pool is the process's: the first program loaded fixes it (the description says it).
        """
        from seglite.inference import executorch

        path = require_file(path, "ExecuTorch program")
        if not executorch.available():
            raise SegliteError(f"{path} needs ExecuTorch: pip install seglite[executorch]")
        return cls._from_phone_engine(executorch.ExecuTorchEngine(path, num_threads), path, batch_size)

    @classmethod
    def from_litert(cls, path: str | Path, batch_size: int = 8, num_threads: int | None = None) -> Predictor:
        """A predictor running a LiteRT ``.tflite`` of ``tools/export.py --format litert`` (XNNPACK delegate, as on a phone).

        The file has a fixed input size: other images are resized to it and their masks back.
        """
        from seglite.inference import litert

        path = require_file(path, "LiteRT model")
        if not litert.runtime_available():
            raise SegliteError(f"{path} needs LiteRT: pip install seglite[litert]")
        return cls._from_phone_engine(litert.LiteRtEngine(path, num_threads), path, batch_size)

    @classmethod
    def from_phone_file(cls, path: str | Path, batch_size: int = 8, num_threads: int | None = None) -> Predictor:
        """:meth:`from_executorch` for a ``.pte``, :meth:`from_litert` for a ``.tflite``."""
        suffix = Path(path).suffix
        if suffix not in (".pte", ".tflite"):
            raise ValueError(f"a phone model is NAME.pte (ExecuTorch) or NAME.tflite (LiteRT), got {path}")
        load = cls.from_executorch if suffix == ".pte" else cls.from_litert
        return load(path, batch_size, num_threads)

    @classmethod
    def _from_phone_engine(cls, engine: Engine, path: Path, batch_size: int) -> Predictor:
        meta = engine.metadata
        names = meta.get(META_CLASS_NAMES)
        if not names:
            raise ModelLoadError(f"{path} has no class names in its metadata; export it with tools/export.py")
        return cls(engine, len(names), names, meta.get(META_PALETTE), None, batch_size,
                   meta.get(META_MEAN, IMAGENET_MEAN), meta.get(META_STD, IMAGENET_STD))  # fmt: skip

    # ------------------------------------------------------------------ prediction
    def predict(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 train ids of an ``(H, W, 3)`` RGB uint8 image.

        An image of more than ``seglite.inference.tiling.MAX_PIXELS`` (8.4 MP) runs in overlapping
        tiles when the predictor runs images at their own size, so its memory stays bounded
        (``seglite.inference.tiling``: sliding-window masks).
        """
        check_image(image)
        image = np.ascontiguousarray(image)
        if self._tiled(image):
            from seglite.inference import tiling

            return tiling.tiled_masks(image, self.engine.graph_output, self.engine.coarse.stride, tiling.TILE, tiling.OVERLAP)
        return self.engine.masks(image[None])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Masks of several images (sizes may differ); images of one size run as one batch, large ones in tiles."""
        masks: list[np.ndarray | None] = [None] * len(self._check_images(images))
        small = []
        for index, image in enumerate(images):
            if self._tiled(image):
                masks[index] = self.predict(image)
            else:
                small.append(index)
        for indices, batch in self._batches([images[index] for index in small]):
            for index, mask in zip(indices, self.engine.masks(batch)):
                masks[small[index]] = mask
        return masks

    def _tiled(self, image: np.ndarray) -> bool:
        """Whether ``image`` is predicted in tiles: too many pixels, each image at its own size, a coarse graph."""
        from seglite.inference import tiling

        large = image.shape[0] * image.shape[1] > tiling.MAX_PIXELS
        return large and self.size is None and getattr(self.engine, "coarse", None) is not None

    def predict_logits(self, image: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` float32 logits of an ``(H, W, 3)`` RGB uint8 image, at its resolution."""
        check_image(image)
        return self.engine.logits(np.ascontiguousarray(image)[None])[0].cpu().numpy()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """The network input of an RGB uint8 image: resized to ``size`` if set, normalised, ``(3, h, w)`` float32."""
        return torch.from_numpy(normalize(resize_image(check_image(image), self.size)))

    @staticmethod
    def _check_images(images: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        if not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list of (H, W, 3) uint8 arrays, got {type(images).__name__}")
        for index, image in enumerate(images):
            check_image(image, f"images[{index}]")  # all checked before the first batch runs
        return images

    def _batches(self, images: Sequence[np.ndarray]) -> Iterator[tuple[list[int], np.ndarray]]:
        """(indices, ``(N, H, W, 3)`` uint8 batch) of images that share a size, ``batch_size`` at most."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            groups[image.shape[:2]].append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                yield chunk, np.stack([images[index] for index in chunk])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.description!r}, num_classes={self.num_classes}, "
            f"size={self.size}, batch_size={self.batch_size})"
        )
