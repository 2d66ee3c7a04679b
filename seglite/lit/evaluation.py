"""The Lightning callback that writes a test run's results (``seglite.results``) while ``seglite test`` runs.

``tools/test.py`` adds it; on the ``seglite`` command line::

    seglite test --config C --ckpt_path P \\
        --trainer.callbacks+=seglite.lit.evaluation.EvaluationWriter \\
        --trainer.callbacks.output_dir results/val
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info

from seglite.errors import SegliteError
from seglite.files import OutputManifest
from seglite.results import (
    CITYSCAPES_FOLDER,
    check_results_writable,
    clear_results,
    prepare_cityscapes_folder,
    write_cityscapes_prediction,
    write_results,
)


class EvaluationWriter(pl.Callback):
    """Writes a test run's results into ``output_dir``; optionally Cityscapes benchmark predictions.

    The export takes the (N, H, W) train ids that ``SegmentationTask.test_step`` returns and the
    image ``path`` that seglite's data sets put in each batch. Only rank 0 writes the scores
    (they are summed over processes); every rank exports its own images.

    Args:
        output_dir: folder of ``results.json``, ``per_class_iou.csv``, ``confusion_matrix.png``
            and, with ``export_cityscapes``, ``cityscapes/<name>_leftImg8bit.png`` label-id PNGs.
        export_cityscapes: write the predictions for ``csEvalPixelLevelSemanticLabeling`` or a
            benchmark submission.
        overwrite: replace results of an earlier run (only files seglite wrote, as the folder's
            manifest lists them); otherwise their presence is an error. Under DDP every process
            records its own predictions, and a record lost to a concurrent one only makes a later
            ``--overwrite`` refuse (never delete) that file.
        settings: recorded in ``results.json`` (config, checkpoint, split, inference mode...).
        destination: the folder named in messages when ``output_dir`` is a staging folder whose files
            are moved there after the run (``tools/test.py`` replaces results only on success).
    """

    def __init__(
        self,
        output_dir: str,
        export_cityscapes: bool = False,
        overwrite: bool = False,
        settings: dict[str, Any] | None = None,
        destination: str | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.destination = Path(destination) if destination else self.output_dir
        self.export_cityscapes = export_cityscapes
        self.overwrite = overwrite
        self.settings = dict(settings or {})
        self.exported = 0
        self._manifest = OutputManifest(self.output_dir)

    @property
    def cityscapes_dir(self) -> Path:
        return self.output_dir / CITYSCAPES_FOLDER

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "test":
            return
        check_results_writable(self.output_dir, self.export_cityscapes, self.overwrite)
        if trainer.is_global_zero:
            if self.overwrite:
                clear_results(self.output_dir, self.export_cityscapes)
            if self.export_cityscapes:
                prepare_cityscapes_folder(self.output_dir)
        trainer.strategy.barrier("EvaluationWriter.setup")
        self._manifest = OutputManifest(self.output_dir)
        self.exported = 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.export_cityscapes:
            return
        if "path" not in batch or not isinstance(outputs, torch.Tensor):
            raise SegliteError(
                "Cityscapes export needs each batch to carry the image 'path' (as seglite's data sets do) "
                "and test_step to return the predicted train ids (as SegmentationTask does)"
            )
        # listed once written (never a name a failed run did not write), so that a later
        # --overwrite replaces exactly these; the manifest is rewritten at most once a second
        for prediction, image_path in zip(outputs.to(torch.uint8).cpu().numpy(), batch["path"]):
            self._manifest.record([write_cityscapes_prediction(prediction, image_path, self.cityscapes_dir)])
            self.exported += 1
        self._manifest.save(durable=False, at_most_every=1.0)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._manifest.save()  # the predictions written before the interrupt or error are seglite's

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.export_cityscapes:
            self._manifest.save()
            rank_zero_info(f"Cityscapes-format predictions ({self.exported} on rank 0): {self.destination / CITYSCAPES_FOLDER}")
        if not trainer.is_global_zero:
            return
        scores = getattr(pl_module, "last_scores", {}).get("test")
        if scores is None:
            return
        if int(scores.confusion.sum()) == 0:
            rank_zero_info("no labelled pixels in this split (e.g. Cityscapes test): no scores written")
            return
        class_names = getattr(pl_module, "class_names", None) or [str(i) for i in range(len(scores.iou))]
        settings = dict(self.settings)
        if hasattr(pl_module, "predict_options"):  # what actually ran, config and overrides merged
            settings["inference"] = dict(pl_module.predict_options)
        paths = write_results(self.output_dir, scores, class_names, **settings)
        rank_zero_info("results: " + ", ".join(str(self.destination / path.name) for path in paths.values()))
