"""What a person sees: edgecv's own lines on the terminal, everything native libraries print in a log.

TensorFlow, abseil, the TFLite converter, tf2onnx and coremltools write to file descriptors 1 and 2
from C++ (abseil logs before TF_CPP_MIN_LOG_LEVEL is even read), so silencing them takes the
descriptors themselves: `NativeOutput` points fds 1 and 2 at a log file (`<out>/build.log`,
`<out>/<target>/build.log`) and gives edgecv's consoles duplicates of the original terminal.
`-v` echoes the log to the terminal as it grows.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional
from edgecv.errors import InputError
from edgecv.files import ensure_dir

_libc = ctypes.CDLL(None)


def _flush_all() -> None:
    """Push Python's and C stdio's buffers out before a descriptor changes where it points."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    _libc.fflush(None)


def _fd_backed(stream) -> bool:
    try:
        return stream.fileno() in (1, 2)
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


class NativeOutput:
    """Route fds 1 and 2 into log files while edgecv writes to the terminal it started on.

    `start()` keeps the terminal as `terminal_out`/`terminal_err` (duplicates of fds 1 and 2, or
    the current sys streams where they are not descriptors, as under a test runner); `scope(path)`
    sends native output to `path` until it exits (nested scopes return to the outer log)."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.terminal_out: IO[str] = sys.stdout
        self.terminal_err: IO[str] = sys.stderr
        self._saved: dict[int, int] = {}
        self._stack: list[Path] = []
        self._opened: set[Path] = set()
        self._echo: Optional[_Echo] = None

    @property
    def active(self) -> bool:
        return bool(self._saved)

    @property
    def current_log(self) -> Optional[Path]:
        return self._stack[-1] if self._stack else None

    def start(self, log: Path) -> "NativeOutput":
        _flush_all()
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            self._saved[fd] = os.dup(fd)
            if _fd_backed(stream):
                term = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
                if fd == 1:
                    self.terminal_out = term
                else:
                    self.terminal_err = term
        if self.verbose:
            self._echo = _Echo(self.terminal_err)
        self._push(Path(log))
        return self

    def stop(self) -> None:
        if not self._saved:
            return
        _flush_all()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._saved.clear()
        if self._echo is not None:
            self._echo.stop()
            self._echo = None
        self._stack.clear()

    def __enter__(self) -> "NativeOutput":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @contextmanager
    def scope(self, log: Path) -> Iterator[Path]:
        """Native output goes to `log` inside the block."""
        if not self.active:
            yield Path(log)
            return
        self._push(Path(log))
        try:
            yield Path(log)
        finally:
            if self._stack:
                self._stack.pop()
            if self._stack and self.active:
                self._point_at(self._stack[-1])

    def _push(self, log: Path) -> None:
        self._stack.append(log)
        self._point_at(log)

    def _point_at(self, log: Path) -> None:
        _flush_all()
        log.parent.mkdir(parents=True, exist_ok=True)
        # each run starts its logs afresh; a scope entered again appends
        # O_NOFOLLOW: a symbolic link planted at the log's name is refused, never written through
        fd = open_log(log, append=log in self._opened)
        self._opened.add(log)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        if self._echo is not None:
            self._echo.follow(log)


def open_log(log: Path, append: bool = False) -> int:
    """A log file descriptor; refuses a symbolic link at `log` instead of writing where it points."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.open(log, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{log} is a symbolic link: edgecv does not write its log through one; remove it") from None
        raise


@contextmanager
def private_log(name: str) -> Iterator[Path]:
    """A fresh log file only this user can read (mode 0600, a unique name in the temp folder): never
    a fixed name that another user could plant a link at or leave behind. Removed afterwards
    unless the block failed and wrote something (then its path is left for the user)."""
    fd, path = tempfile.mkstemp(prefix=f"edgecv-{name}-", suffix=".log")
    os.close(fd)
    ok = False
    try:
        yield Path(path)
        ok = True
    finally:
        if ok or os.path.getsize(path) == 0:
            os.unlink(path)


class _Echo:
    """`-v`: copy what lands in the current log to the terminal (a tail -f that follows scopes)."""

    def __init__(self, terminal: IO[str]):
        self.terminal = terminal
        self._path: Optional[Path] = None
        self._pos = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="edgecv-log-echo")
        self._thread.start()

    def follow(self, path: Path) -> None:
        with self._lock:
            self._drain()
            self._path = path
            self._pos = path.stat().st_size if path.exists() else 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            self._drain()

    def _drain(self) -> None:
        if self._path is None or not self._path.exists():
            return
        with open(self._path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        if data:
            self._pos += len(data)
            self.terminal.write(data.decode("utf-8", "replace"))
            self.terminal.flush()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                self._drain()


def log_tail(path: Optional[Path], lines: int = 5) -> list[str]:
    """The last lines of a log (what to show next to a failure)."""
    if path is None or not Path(path).is_file():
        return []
    text = Path(path).read_text(errors="replace").splitlines()
    return [line for line in text if line.strip()][-lines:]


@contextmanager
def native_output(log: Path, console: "Console", native: Optional["NativeOutput"] = None,
                  verbose: bool = False) -> Iterator["NativeOutput"]:
    """Native libraries' output into `log` while `console` keeps the terminal (or the notebook).
    A caller that already routes it (the command line) passes its own `native`."""
    if native is not None:
        yield native
        return

    ensure_dir(Path(log).parent)
    own = NativeOutput(verbose).start(Path(log))
    before = getattr(console, "_file", None)  # None: follow sys.stderr, as a console made without a file does
    console.file = own.terminal_err
    try:
        yield own
    finally:
        own.stop()
        console.file = before
