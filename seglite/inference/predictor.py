"""Segment RGB images with a trained checkpoint (PyTorch) or an exported ONNX model (ONNX Runtime).

Both backends share preprocessing and postprocessing: the evaluation transform of training
(``seglite.data.transforms.eval_transform``: optional resize, ImageNet normalisation), one
forward pass, logits resized bilinearly to each image's own resolution, argmax to train ids.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.data.transforms import eval_transform
from seglite.errors import SegliteError

Backend = Literal["torch", "onnxruntime"]
Size = tuple[int, int]

# names of the exported graph's input and output, and of the metadata the exporter writes
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
META_CLASS_NAMES = "seglite.class_names"
META_PALETTE = "seglite.palette"
META_MEAN = "seglite.mean"
META_STD = "seglite.std"
META_INPUT_SIZE = "seglite.input_size"
META_CHECKPOINT_SHA256 = "seglite.checkpoint_sha256"


class ModelFileNotFoundError(SegliteError, FileNotFoundError):
    """A checkpoint or exported model file does not exist."""


class ModelLoadError(SegliteError, ValueError):
    """A checkpoint or exported model exists but cannot be turned into a predictor."""


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``; ``ModelFileNotFoundError`` naming it when it is not a file."""
    path = Path(path)
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise ModelFileNotFoundError(f"{what} not found: {path} {reason}")
    return path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_task(checkpoint: str | Path, map_location: str | torch.device = "cpu"):
    """The ``SegmentationTask`` of a Lightning checkpoint written by ``seglite fit`` / ``tools/train.py``."""
    from seglite.lit.task import SegmentationTask  # Lightning is slow to import: only when a checkpoint is read

    path = require_file(checkpoint, "checkpoint")
    try:
        task = SegmentationTask.load_from_checkpoint(path, map_location=map_location)
    except (TypeError, KeyError, RuntimeError, EOFError, ValueError) as error:
        # a TypeError about `model` means hparams without the model config: not a CLI checkpoint
        raise ModelLoadError(
            f"cannot rebuild the model from checkpoint {path}: {error}. Use a checkpoint written by "
            "`seglite fit` or `python tools/train.py CONFIG` (it stores the model's config)"
        ) from error
    return task.eval()


def check_size(size: Sequence[int] | None, name: str = "size") -> Size | None:
    """``size`` as ``(height, width)`` of positive ints, or ``None``; ``ValueError`` naming ``name`` otherwise."""
    if size is None:
        return None
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in size)):
        raise ValueError(f"{name} must be (height, width) with positive integers or None, got {size!r}")
    return int(size[0]), int(size[1])


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless it is an ``(H, W, 3)`` uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3) of RGB uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (RGB 0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) (RGB channels last), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {image.shape}")
    return image


Runner = Callable[[torch.Tensor], torch.Tensor]
"""Normalised (N, 3, h, w) float32 CPU batch -> (N, C, h, w) logits (on any device)."""


class TorchRunner:
    """Runs an ``nn.Module`` under ``torch.inference_mode`` on ``device``, optionally channels-last.

    The module itself is put in eval mode, moved and converted (not a copy).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            batch = batch.to(self.device, memory_format=self.memory_format, non_blocking=True)
            return self.model(batch).float()


class OnnxRunner:
    """Runs an ONNX model (a file path or its serialised bytes) in ONNX Runtime.

    ``num_threads`` defaults to ``torch.get_num_threads()``, so that ``torch.set_num_threads``
    governs both backends.
    """

    def __init__(self, model: str | Path | bytes, device: str = "cpu", num_threads: int | None = None) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(
                    f"device={device!r}: this onnxruntime has no CUDA provider (available: "
                    f"{ort.get_available_providers()}); install onnxruntime-gpu or use device='cpu'"
                )
            index = str(device).partition(":")[2] or "0"
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index)}))
        options = ort.SessionOptions()
        # one thread setting for both backends: torch's (its default is also the number of cores)
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        source = model if isinstance(model, bytes) else str(model)
        shown = "the exported model" if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for malformed models
            raise ModelLoadError(f"cannot load ONNX model {shown}: {error}") from error
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) < 1 or len(outputs[0].shape) != 4:
            raise ModelLoadError(
                f"{shown} is not a segmentation model of tools/export.py: expected one (N, 3, H, W) input "
                f"and (N, C, H, W) logits, found inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}"
            )
        self.input_name = inputs[0].name
        batch, _, height, width = inputs[0].shape
        # exported sizes are ints where static and names (strings) where dynamic
        self.batch_size = batch if isinstance(batch, int) else None
        self.input_size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        # seglite's entries are JSON-encoded (see seglite.inference.export.onnx_metadata)
        self.metadata = {
            key: json.loads(value)
            for key, value in self.session.get_modelmeta().custom_metadata_map.items()
            if key.startswith("seglite.")
        }
        self.num_classes = outputs[0].shape[1]
        if not isinstance(self.num_classes, int):
            raise ModelLoadError(f"{shown}: the class axis of the logits has no fixed size; export it with tools/export.py")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        count = len(batch)
        if self.batch_size is not None and count < self.batch_size:
            # a model exported for a fixed batch takes only that: fill up with zeros, drop their logits
            batch = torch.cat([batch, batch.new_zeros((self.batch_size - count, *batch.shape[1:]))])
        logits = self.session.run(None, {self.input_name: batch.numpy()})[0]
        return torch.from_numpy(logits[:count])


class Predictor:
    """Train-id masks of RGB images, at each image's own resolution.

    Build it with :meth:`from_checkpoint`, :meth:`from_onnx` or :meth:`from_model`.

    Args:
        runner: normalised (N, 3, h, w) batch -> (N, C, h, w) logits.
        num_classes: classes the model predicts (at most 255: masks are uint8).
        class_names, palette: for legends and colour masks; default: the class index and no palette.
        size: ``(height, width)`` images are resized to before the model; ``None`` runs each
            image at its own size.
        batch_size: most images per model call in :meth:`predict_batch`.
        mean, std: normalisation the model expects; must be those of training
            (``seglite.data.transforms``), checked so a model exported otherwise is not silently misread.
    """

    def __init__(
        self,
        runner: Runner,
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but the model predicts {num_classes} classes")
        if not (np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD)):
            raise ValueError(
                f"the model expects mean {list(mean)} and std {list(std)}, but seglite preprocessing "
                f"normalises with {list(IMAGENET_MEAN)} and {list(IMAGENET_STD)}"
            )
        self.runner = runner
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.palette = [list(map(int, color)) for color in palette] if palette is not None else None
        self.size = check_size(size)
        self.batch_size = batch_size
        self._transform = eval_transform(self.size)

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
        """A predictor over a model in memory (``SegmentationModel`` or any module returning logits at input size)."""
        return cls(TorchRunner(model, device, channels_last), model.num_classes, class_names, palette, size, batch_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        backend: Backend = "torch",
        size: Size | None = None,
        onnx_path: str | Path | None = None,
        channels_last: bool = False,
        batch_size: int = 8,
    ) -> Predictor:
        """A predictor from a Lightning checkpoint of ``seglite fit`` / ``tools/train.py``.

        Args:
            path: the ``.ckpt`` file.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
            backend: ``"torch"`` runs the model itself; ``"onnxruntime"`` runs it exported to ONNX.
            size: inference ``(height, width)``; ``None``: each image's own size.
            onnx_path: with ``backend="onnxruntime"``, the ONNX file of this checkpoint: used when
                it exists (it must have been exported from this checkpoint), exported there
                (dynamic size) when it does not. ``None`` exports into memory.
            channels_last: channels-last memory format for the torch backend (faster on CPU).
        """
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        task = load_task(path)
        names, palette = task.class_names, task.palette
        if backend == "torch":
            return cls(TorchRunner(task.model, device, channels_last), task.num_classes, names, palette, size, batch_size)
        from seglite.inference.export import export_onnx, onnx_metadata, onnx_model_bytes  # export imports this module

        checkpoint_hash = file_sha256(path)
        metadata = onnx_metadata(names, palette, None, checkpoint_hash)
        sample_size = size or (256, 512)
        if onnx_path is None:
            return cls.from_onnx(onnx_model_bytes(task.model, sample_size, True, metadata=metadata), device, size, batch_size)
        onnx_path = Path(onnx_path)
        if onnx_path.exists():
            recorded = OnnxRunner(onnx_path).metadata.get(META_CHECKPOINT_SHA256)
            if recorded != checkpoint_hash:
                raise ModelLoadError(
                    f"{onnx_path} was not exported from {path} (its recorded checkpoint differs); "
                    "delete it or pass another onnx_path"
                )
        else:
            export_onnx(task.model, onnx_path, sample_size, dynamic=True, metadata=metadata)
        return cls.from_onnx(onnx_path, device, size, batch_size)

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
        """
        if not isinstance(path, bytes):
            path = require_file(path, "ONNX model")
        runner = OnnxRunner(path, device, num_threads)
        size = check_size(size)
        if runner.input_size is not None:
            if size is not None and size != runner.input_size:
                raise ValueError(
                    f"size={size} but the ONNX model was exported for a fixed input of {runner.input_size}; "
                    "pass size=None or export with --dynamic"
                )
            size = runner.input_size
        if runner.batch_size is not None:
            batch_size = min(batch_size, runner.batch_size)
        meta = runner.metadata
        return cls(
            runner,
            runner.num_classes,
            meta.get(META_CLASS_NAMES),
            meta.get(META_PALETTE),
            size,
            batch_size,
            meta.get(META_MEAN, IMAGENET_MEAN),
            meta.get(META_STD, IMAGENET_STD),
        )

    # ------------------------------------------------------------------ prediction
    def predict(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 train ids of an ``(H, W, 3)`` RGB uint8 image."""
        return self.predict_batch([check_image(image)])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Masks of several images (sizes may differ); images that share an input size run as one batch."""
        if not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list of (H, W, 3) uint8 arrays, got {type(images).__name__}")
        masks: list[np.ndarray | None] = [None] * len(images)
        for index, logits in self._iter_logits(images):
            masks[index] = logits.argmax(dim=0).to(torch.uint8).cpu().numpy()
        return masks

    def predict_logits(self, image: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` float32 logits of an ``(H, W, 3)`` RGB uint8 image, at its resolution."""
        check_image(image)
        return next(self._iter_logits([image]))[1].cpu().numpy()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """The network input of an RGB uint8 image: resized to ``size`` if set, normalised, ``(3, h, w)`` float32."""
        return self._transform(image=check_image(image))["image"]

    def _iter_logits(self, images: Sequence[np.ndarray]) -> Iterator[tuple[int, torch.Tensor]]:
        """(index, (C, H, W) logits at the image's size) for every image, batch by batch."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            check_image(image, f"images[{index}]")  # all checked before the first batch runs
            groups[self.size or image.shape[:2]].append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = torch.stack([self.preprocess(images[index]) for index in chunk])
                for index, logits in zip(chunk, self.runner(batch)):
                    yield index, self._resize(logits, images[index].shape[:2])

    @staticmethod
    def _resize(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if logits.shape[-2:] == size:
            return logits
        return F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(runner={type(self.runner).__name__}, num_classes={self.num_classes}, "
            f"size={self.size}, batch_size={self.batch_size})"
        )
