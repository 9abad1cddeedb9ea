"""One build at a time per build folder: a second one waits (up to a limit) or fails clearly."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from edgecv.files import ensure_dir, explain_write_error
from edgecv.errors import EdgecvError


class BuildLocked(EdgecvError):
    exit_code = 2


class BuildLock:
    """The command line takes it before opening the build's log (a second build refused here must
    not have truncated the running build's build.log) and hands it to `Build.run(held=...)`."""

    def __init__(self, out_root: Path, wait_seconds: float = 0.0):
        self.path = ensure_dir(Path(out_root)) / ".lock"
        self.wait_seconds = wait_seconds
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def covers(self, out_root: Path) -> bool:
        """Held, and for this build folder."""
        return self.held and os.path.realpath(self.path) == os.path.realpath(Path(out_root) / ".lock")

    def __enter__(self) -> "BuildLock":
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:  # a read-only or foreign --out folder
            raise explain_write_error(self.path.parent, e) from None
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "another process"
                    os.close(self._fd)
                    raise BuildLocked(
                        f"{self.path.parent} is being built by {holder}; wait for it to finish, use another "
                        "--out folder, or pass --wait SECONDS") from None
                time.sleep(0.2)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # the kernel also drops it if the process is killed
            os.close(self._fd)
            self._fd = None
