"""Moved: result writers to :mod:`seglite.results`, the callback to :mod:`seglite.lit.evaluation`.

``seglite.inference.evaluation.EvaluationWriter`` stays importable because command lines name it
(``--trainer.callbacks+=seglite.inference.evaluation.EvaluationWriter``); it is loaded on first
use, so importing this module does not import Lightning.
"""


def __getattr__(name: str):
    if name == "EvaluationWriter":
        from seglite.lit.evaluation import EvaluationWriter

        return EvaluationWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
