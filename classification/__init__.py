"""The classification reference task: DARTS on CIFAR-10 (or the embedded synthetic set).

``ClassificationTask`` is the ``Task``; ``classification.data`` reads CIFAR-10 folders and
builds the synthetic set, ``classification.synthetic`` generates the synthetic images.
Nothing runs at import time.
"""

from classification.data import ImageSet, cifar10, synthetic
from classification.task import ClassificationTask

__all__ = ["ClassificationTask", "ImageSet", "cifar10", "synthetic"]
