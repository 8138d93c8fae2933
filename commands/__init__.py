"""The three commands (``search.py``, ``train.py``, ``evaluate.py``) and what they share:
the task registry, configuration, run folders and checkpoints, data loading, error reporting.
Only this package imports the applications."""
