"""Benchmarks of the suite (scripts, not tests). See benchmarks/README.md."""
