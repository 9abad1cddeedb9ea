"""Grouped splits (`data.group_by`): a regular expression searched in each image's path relative to
the data folder names the image's group (its first capture group, or the whole match). Every image
of a group lands on one side of the split, so one person's (one video's, one scene's) frames never
sit in both training and validation, where near-copies of training images would flatter the metric.

Groups are shuffled by the seed and taken for validation until it holds val_fraction of the images
(the last group taken may overshoot by less than its own size).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from edgecv.errors import DataError

T = TypeVar("T")

EXAMPLE = r"'^(.+)_\d+\.jpg$' puts Name_01.jpg and Name_02.jpg in group Name"


def compile_group_by(pattern: str) -> re.Pattern:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a regular expression ({e}); e.g. {EXAMPLE}") from None
    if rx.groups > 1 and rx.groupindex.get("group") is None:
        raise ValueError(f"{rx.groups} capture groups: use one (the group's name) or name it (?P<group>...)")
    return rx


def group_of(path: str | Path, root: str | Path, pattern: str) -> str:
    """The group an image belongs to: the pattern searched in its path relative to `root` ('/'-separated)."""
    rx = compile_group_by(pattern)
    try:
        rel = Path(path).relative_to(root).as_posix()
    except ValueError:
        rel = Path(path).name
    m = rx.search(rel)
    if m is None:
        raise DataError(f"data.group_by {pattern!r} does not match the image {rel}: every image needs a group; fix the "
                        f"pattern (e.g. {EXAMPLE}) or remove data.group_by")
    if "group" in rx.groupindex:
        return m.group("group")
    return m.group(1) if rx.groups else m.group(0)


def split_by_group(items: Sequence[T], group: Callable[[T], str], val_fraction: float, seed: int,
                   what: str = "images") -> tuple[list[T], list[T]]:
    """(train, val) with no group on both sides; each keeps the order of `items`."""
    members: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        members.setdefault(group(item), []).append(i)
    names = sorted(members)
    if len(names) < 2:
        raise DataError(f"data.group_by finds {len(names)} group in {len(items)} {what}: a grouped split needs at "
                        "least 2 groups (one for training, one for validation); check the pattern")
    random.Random(seed).shuffle(names)
    want = max(1, round(len(items) * val_fraction))
    val_idx: set[int] = set()
    for name in names[:-1]:  # at least one group stays for training
        if len(val_idx) >= want:
            break
        val_idx.update(members[name])
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val
