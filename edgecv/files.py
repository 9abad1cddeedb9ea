"""Crash-safe file writes: write to a temporary name in the same folder, then rename into place.

A build killed at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgecv.errors import InputError
from edgecv.limits import MAX_JSON_BYTES, check_json_depth, decode_utf8, read_limited


class OutputError(InputError):
    """A file could not be written (disk full, read-only, permission): exit 2, the path named."""


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def is_write_error(e: BaseException) -> bool:
    """A full, read-only or forbidden destination (not a bug, not a missing input)."""
    return isinstance(e, OSError) and e.errno in WRITE_ERRNOS


def explain_write_error(path: Path, e: OSError) -> OutputError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"disk full while writing {path}: free space or choose another --out folder")
    if e.errno == errno.EROFS:
        return OutputError(f"cannot write {path}: the file system is read-only; choose a writable folder")
    if e.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {path}: permission denied; choose a writable folder")
    return OutputError(f"cannot write {path}: {e.strerror or e}")


def ensure_writable(path: Path) -> None:
    """Fail before any work when `path` (a file to be written) cannot be created: a benchmark
    must not lose its results after measuring. Creates and removes a temporary file beside it."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise explain_write_error(path, e) from None
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")


def read_json(path: Path, what: str = "file") -> object:
    """A JSON file's content, or an InputError naming the file and what is wrong with it (not
    UTF-8, not JSON, over the size or depth limits of `edgecv.limits`)."""
    import json


    path = Path(path)
    try:
        data = read_limited(path, MAX_JSON_BYTES, what)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: not found") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path}: is a folder, not a JSON file") from None
    except OSError as e:
        raise InputError(f"{what} {path}: cannot be read ({e})") from None
    text = decode_utf8(data, path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise InputError(f"{what} {path}: JSON nested too deeply to be an edgecv file") from None
    check_json_depth(value, f"{what} {path}")
    return value


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise explain_write_error(path, e) from None
    return path


@contextmanager
def atomic_path(final: Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success it is renamed to `final`."""
    final = Path(final)
    ensure_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name if not is_dir else tmp / "out"
    try:
        yield target
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(target, final)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(target, final)
    except OSError as e:
        raise explain_write_error(final, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, in sorted order)."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def walk_files(top: Path, onerror: Optional[Callable[[OSError], None]] = None) -> Iterator[Path]:
    """Every file name under `top` (broken links included), sorted, hidden entries skipped. Links to
    folders are not followed: a link to a parent folder would loop or pull in the whole disk."""
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def name_problem(name: str) -> Optional[str]:
    """Why a file or folder name cannot be written into labels, reports or calibration lists (not
    UTF-8, or a control character such as a newline), or None."""
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return "name is not valid UTF-8: rename it"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "name contains a control character (newline, tab ...): rename it"
    return None


def unusable_name(path: Path) -> Optional[str]:
    """Why a file found in a folder listing cannot be used, or None: a bad name, a link loop, a
    broken link."""
    why = name_problem(str(path))
    if why:
        return f"file {why}"
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)})"
        return f"cannot be read: {e.strerror}"
    return None


@lru_cache(maxsize=32)
def file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_key(path: Path) -> str:
    """A file's sha256, cached per path, size and modification time (a stage key's input)."""
    st = Path(path).stat()
    return file_sha256(str(path), st.st_size, st.st_mtime_ns)
