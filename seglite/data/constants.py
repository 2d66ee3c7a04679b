"""Constants every layer above data shares: the ignore label and the input normalisation.

Plain Python, so deployment code can read them without importing albumentations.
"""

IGNORE_INDEX = 255
"""Label value of pixels that are not scored and not trained on."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB mean and standard deviation (of 0-1 pixel values) the networks' inputs are normalised with."""
