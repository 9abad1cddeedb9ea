"""Peak resident memory of loading and running an artifact (Linux: /proc; elsewhere not measured)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> Optional[int]:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextmanager
def peak_memory() -> Iterator[dict]:
    """Yields a dict filled on exit: process peak RSS during the block, and growth over the start.

    Resets the kernel's high-water mark first (writing 5 to clear_refs), so the peak is this block's.
    """
    result: dict = {"peak_rss_mb": None, "rss_growth_mb": None, "method": "unavailable on this OS"}
    start = _status_kb("VmRSS")
    try:
        _CLEAR_REFS.write_text("5")
        resettable = True
    except OSError:
        resettable = False
    try:
        yield result
    finally:
        peak = _status_kb("VmHWM")
        if start is not None and peak is not None:
            result.update({"peak_rss_mb": peak / 1024, "rss_growth_mb": max(0, peak - start) / 1024,
                           "method": "VmHWM of the process" + ("" if resettable else " (not reset: includes earlier work)")})
