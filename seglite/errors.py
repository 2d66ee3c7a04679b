"""Errors seglite raises for user input: the message names the file or argument and what was expected."""


class SegliteError(Exception):
    """Base of user-facing seglite errors; the command-line tools print the message without a traceback."""


class DatasetNotFoundError(SegliteError, FileNotFoundError):
    """A dataset root or split folder is missing."""


class DataFormatError(SegliteError, ValueError):
    """A dataset file is unreadable, unpaired or holds unexpected values."""


class OutputExistsError(SegliteError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class DataReadError(SegliteError, OSError):
    """A data file is missing or cannot be decoded."""


class ConfigurationError(SegliteError, ValueError):
    """A configuration value was rejected by the class it configures."""


class ModelLoadError(SegliteError, ValueError):
    """A checkpoint or exported model exists but cannot be turned into a model or predictor."""


class CheckpointError(ModelLoadError):
    """A checkpoint file is unreadable, refused, or holds another model than the one asked for."""


class ExportError(SegliteError):
    """The model cannot be exported with the requested settings."""


class ExportCheckError(ExportError):
    """The exported model's logits differ from PyTorch's beyond the tolerance."""
