"""Data for the suite: image I/O, benchmark folder layouts, pair transforms, synthetic defaults.

Nothing here imports the other packages of the suite.
"""

from datasets.errors import DataError
from datasets.io import IMAGE_EXTENSIONS, is_image_file, read_image, write_image
from datasets.paired import PairedFolder, UnpairedFolder, describe_layouts, find_pairs
from datasets.synthetic_lowlight import SyntheticLowLight, degrade_lowlight, write_lol_folder
from datasets.transforms import pad_to_multiple, paired_random_crop, paired_random_flip, unpad

__all__ = [
    "DataError",
    "IMAGE_EXTENSIONS",
    "PairedFolder",
    "SyntheticLowLight",
    "UnpairedFolder",
    "degrade_lowlight",
    "describe_layouts",
    "find_pairs",
    "is_image_file",
    "pad_to_multiple",
    "paired_random_crop",
    "paired_random_flip",
    "read_image",
    "unpad",
    "write_image",
    "write_lol_folder",
]
