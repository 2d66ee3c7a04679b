"""Constants every layer above data shares: the ignore label and the input normalisation.

Plain Python, so deployment code can read them without importing albumentations.
"""

from typing import Literal, get_args

IGNORE_INDEX = 255
"""Label value of pixels that are not scored and not trained on."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB mean and standard deviation (of 0-1 pixel values) the networks' inputs are normalised with."""

ClassWeightMethod = Literal["enet", "median_frequency"]
"""How ``class_weights`` are computed from the training labels (``seglite.data.statistics.class_weights``)."""
CLASS_WEIGHT_METHODS: tuple[str, ...] = get_args(ClassWeightMethod)
