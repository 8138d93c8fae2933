"""Image-restoration applications (one sub-package per task) and their shared losses and metrics."""
