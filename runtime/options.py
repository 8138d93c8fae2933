"""``name=value`` options of a hypergradient method, as ``--option`` flags give them."""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["parse_option"]


def parse_option(text: str) -> tuple[str, Any]:
    """``name=value`` of a method option; numbers, true/false/none are converted."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"option {text!r} must look like name=value, e.g. iters=10")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False, "none": None}.get(value.lower(), value)
