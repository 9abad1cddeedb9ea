"""Whether `weights: imagenet` may download here, and a guard that stops Keras from trying when not.

keras-applications fetch ImageNet weights through `data_utils.get_file`, which reads its cache
(`~/.keras/models`, `KERAS_HOME`) first. The guard lets a cached file through and, when downloads
are off, turns a fetch into `NeedsDownload` naming the file and its address, so the candidate is
listed as skipped with that reason instead of failing the run (or downloading unasked).
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

WEIGHTS_HOST = ("storage.googleapis.com", 443)  # where keras-applications weights live


class NeedsDownload(Exception):
    def __init__(self, fname: str, origin: str):
        super().__init__(f"its ImageNet weights {fname} are not in Keras' cache and this machine has no network "
                         f"(it would download {origin}); give a local no-top h5 as its `weights`, or "
                         "select.weights_dir")
        self.fname, self.origin = fname, origin


def network_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the weights' host (nothing is fetched)."""
    if os.environ.get("EDGECV_OFFLINE", "") not in ("", "0"):
        return False
    try:
        socket.create_connection(WEIGHTS_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached(fname: str, cache_subdir: str, cache_dir) -> bool:
    base = os.path.expanduser(cache_dir or os.path.join("~", ".keras"))
    return bool(fname) and (os.path.exists(os.path.join(base, cache_subdir, fname))
                            or os.path.exists(os.path.join("/tmp", ".keras", cache_subdir, fname)))


@contextmanager
def downloads(allowed: bool) -> Iterator[None]:
    """Inside: Keras fetches weights only from its cache unless `allowed`."""
    from tf_keras.src.utils import data_utils

    original = data_utils.get_file

    def guarded(fname=None, origin=None, *args, **kw):
        if not allowed and not _cached(fname, kw.get("cache_subdir", "datasets"), kw.get("cache_dir")):
            raise NeedsDownload(fname, origin)
        return original(fname, origin, *args, **kw)

    data_utils.get_file = guarded
    try:
        yield
    finally:
        data_utils.get_file = original
