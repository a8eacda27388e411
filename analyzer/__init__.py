"""Batch facial-emotion analyzer: folders of images and videos in, Parquet out.

Importing this package is cheap: TensorFlow, OpenCV and the detectors are imported
only inside the functions that need them.
"""

__version__ = "0.1.0"
