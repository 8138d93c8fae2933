"""The machine a benchmark ran on, in one line: host, CPU model, logical cores (every table says it)."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one, else ``platform``)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return model


def machine() -> str:
    """``host, CPU model, N logical cores``."""
    return f"{platform.node()}, {cpu_model()}, {os.cpu_count()} logical cores"
