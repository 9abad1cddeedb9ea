"""Size and depth limits on the YAML and JSON edgecv reads from users (recipes, targets, reports,
bench results): a hostile or broken file is refused at once with exit 2 instead of exhausting
memory (a YAML alias bomb expands 9 levels of 10 aliases into a billion nodes) or the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.errors import InputError

MAX_YAML_BYTES = 1 << 20  # a recipe or target file is a few KB
MAX_JSON_BYTES = 64 << 20  # a report with every image's scores for ~100k images
MAX_DEPTH = 64  # levels of nesting: edgecv's own files use fewer than 10
MAX_YAML_NODES = 100_000  # scalars, lists and mappings, each alias counted as the copy it stands for


class InputTooLarge(InputError):
    """A file over the size, depth or alias-expansion limits."""


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The file's bytes, refused when larger than `limit` (checked before reading it)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limit:
        raise InputTooLarge(f"{what} {path} is {size / 1e6:.1f} MB, over edgecv's limit of {limit / 1e6:.0f} MB for "
                            "this kind of file: is it the right file?")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise InputTooLarge(f"{what} {path} is over edgecv's limit of {limit / 1e6:.0f} MB")
    return data


def decode_utf8(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}): save it "
                         "as UTF-8") from None


def check_yaml_node(root, where: str) -> None:
    """Refuse a composed YAML document whose expansion (aliases counted as copies) exceeds
    MAX_YAML_NODES or MAX_DEPTH, or that refers to itself; runs in time linear in the text."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            size[key], depth[key] = 1, 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = list(node.value)
        if done:
            busy.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_YAML_NODES:
                raise InputTooLarge(f"{where}: the YAML expands to more than {MAX_YAML_NODES:,} values (aliases "
                                    f"*name count as copies; near line {node.start_mark.line + 1}): edgecv refuses "
                                    "it rather than exhaust memory")
            if depth[key] > MAX_DEPTH:
                raise InputTooLarge(f"{where}: YAML nested more than {MAX_DEPTH} levels deep (near line "
                                    f"{node.start_mark.line + 1})")
            continue
        if key in size:
            continue
        if key in busy:
            raise InputError(f"{where}: a YAML alias refers to a node that contains it (line "
                             f"{node.start_mark.line + 1}): write the value out")
        busy.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def check_json_depth(value: Any, where: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH (the readers and pydantic recurse into it)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise InputTooLarge(f"{where}: JSON nested more than {MAX_DEPTH} levels deep: not an edgecv file")
        if isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values())
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v)
