"""The classification reference task: DARTS on CIFAR-10 (or the embedded synthetic set).

``ClassificationTask`` is the ``Task``; ``nas.classification.data`` reads CIFAR-10 folders and
builds the synthetic set, ``nas.classification.synthetic`` generates the synthetic images.
Nothing runs at import time.
"""

from nas.classification.data import ImageSet, cifar10, synthetic
from nas.classification.task import ClassificationTask

__all__ = ["ClassificationTask", "ImageSet", "cifar10", "synthetic"]
