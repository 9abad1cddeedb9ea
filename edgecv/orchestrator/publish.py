"""A target folder changes all at once: the build writes `<out>/.<target>.staging/` (marked
`.incomplete` until the manifest, written last, is in), then swaps it with `<out>/<target>/` in one
rename. A build killed at any point leaves the previous folder whole and a staging folder the
next build (or `edgecv clean`) removes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from edgecv.build_folder import BUILD_MARKER, INCOMPLETE, MANIFEST
from edgecv.errors import InputError
from edgecv.files import atomic_write_text, ensure_dir, explain_write_error

STAGING_SUFFIX = ".staging"
RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths atomically
AT_FDCWD = -100


def staging_path(out_root: Path, target: str) -> Path:
    return Path(out_root) / f".{target}{STAGING_SUFFIX}"


def mark_build_folder(out_root: Path) -> None:
    """Say that edgecv made `out_root` (what `edgecv clean` checks before deleting anything)."""
    if not (Path(out_root) / BUILD_MARKER).is_file():
        atomic_write_text(Path(out_root) / BUILD_MARKER, "edgecv build folder: .cache and .<target>.staging "
                          "folders here may be deleted by `edgecv clean`\n")


def check_target_folder(out_root: Path, target: str) -> None:
    """Refuse a target folder that is a symbolic link (`out/TARGET -> served/current`): the swap
    replaces the link itself, and building through it would write in the linked folder in place."""
    final = Path(out_root) / target
    if final.is_symlink():
        raise InputError(f"{final} is a symbolic link (to {os.readlink(final)}): edgecv swaps a target folder in whole "
                         "with one rename and never writes through a link. Remove the link, build, then point the "
                         f"served path at the build: ln -sfn {Path(out_root).absolute() / target} SERVED_PATH (or "
                         "build into another --out)")


def check_build_links(out_root: Path, targets) -> None:
    """Before a build writes anything: neither the cache nor a target folder may be a symbolic link
    (the build would write into, and `edgecv clean` prune, a folder outside the build folder)."""
    cache = Path(out_root) / ".cache"
    if cache.is_symlink():
        raise InputError(f"{cache} is a symbolic link (to {os.readlink(cache)}): edgecv writes its cache only inside "
                         f"the build folder, never through a link. Remove the link, or give a build folder on the disk "
                         "you wanted the cache on (--out)")
    for target in targets:
        check_target_folder(out_root, target)


def _unlink_if_link(path: Path) -> None:
    """A staging or previous folder name taken by a link is removed (the link, not where it points)."""
    if path.is_symlink():
        path.unlink()


def start(out_root: Path, target: str) -> Path:
    """A fresh, empty staging folder for `target`, marked incomplete. Refuses to plan replacing a
    folder that edgecv did not write, or a target folder that is a symbolic link."""
    check_target_folder(out_root, target)
    final = Path(out_root) / target
    if final.exists() and not (final / MANIFEST).is_file() and any(final.iterdir()):
        raise InputError(f"{final} exists and was not written by edgecv (no {MANIFEST}): the build would replace "
                         "it; move it away or choose another --out folder")
    previous = final.with_name(f".{target}.previous")
    _unlink_if_link(previous)
    if previous.is_dir() and not final.exists():  # killed between commit's two renames: put it back
        os.replace(previous, final)
    staging = staging_path(out_root, target)
    _unlink_if_link(staging)
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed build
    ensure_dir(staging)
    atomic_write_text(staging / INCOMPLETE, "a build is writing this folder\n")
    return staging


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step where the kernel and file system can; False where they cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (macOS, musl): the caller renames twice
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def commit(staging: Path, final: Path) -> None:
    """Make the staging folder (manifest written) the target folder, replacing the previous one."""
    try:
        os.unlink(staging / INCOMPLETE)
        if final.exists() and _exchange(staging, final):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the previous build
            return
        previous = final.with_name(f".{final.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        if final.exists():
            os.replace(final, previous)
        os.replace(staging, final)
        shutil.rmtree(previous, ignore_errors=True)
    except OSError as e:
        raise explain_write_error(final, e) from None
