"""Read recipe and target YAML into pydantic models, with errors that say file, line, key and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, TypeVar

import re

import yaml
from pydantic import BaseModel, ValidationError

from edgecv.config.recipe import Recipe
from edgecv.config.target import Target
from edgecv.errors import ConfigError, EdgecvError, did_you_mean
from edgecv.limits import check_yaml_node, MAX_YAML_BYTES, decode_utf8, read_limited
from edgecv.registry import FORMAT_PACKAGES

M = TypeVar("M", bound=BaseModel)

# Where `--target NAME` is looked up, in order, after an explicit path.
PACKAGE_TARGETS = Path(__file__).resolve().parents[2] / "targets"


def _line_of(node: Optional[yaml.Node], loc: tuple) -> Optional[int]:
    """1-based line of the YAML node at `loc` (the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(part)), None)
            if nxt is None:  # the key itself is wrong (extra key): point at it
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the sub-model that holds `loc[-1]`, for 'unknown key' messages."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list (artifacts.0): the list's model holds the key
            continue
        field = getattr(current, "model_fields", {}).get(str(part))
        if field is None:
            return []
        ann = field.annotation
        # unwrap Optional[...] / list[...] down to a model class
        for arg in (ann, *getattr(ann, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
        else:
            if isinstance(part, int):
                continue
            return []
    return [n for n, f in current.model_fields.items() if not f.exclude]


def _override_for(loc: tuple, overrides: dict) -> Optional[str]:
    """The `--set` item that wrote (or is the section of) the key at `loc`, if one did."""
    loc = tuple(str(p) for p in loc)
    for keys, item in overrides.items():
        n = min(len(keys), len(loc))
        if n and keys[:n] == loc[:n]:
            return item
    return None


def format_validation_error(err: ValidationError, model: type[BaseModel], file: Path, node,
                            overrides: Optional[dict] = None) -> str:
    lines = [f"{file}: {err.error_count()} problem(s):"]
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p != "__root__")
        key = ".".join(str(p) for p in loc) or "(top level)"
        override = _override_for(loc, overrides or {})
        line = None if override else _line_of(node, loc)
        where = f"from the command line `--set {override}`, " if override else f"line {line}, " if line else ""
        msg = e["msg"]
        if e["type"] == "value_error" and msg.startswith("Value error, "):  # pydantic's words, not ours
            msg = msg[len("Value error, "):]
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            msg = (f"unknown key `{loc[-1]}`{did_you_mean(str(loc[-1]), allowed)}"
                   + (f"; allowed keys here: {', '.join(allowed)}" if allowed else ""))
        elif e["type"] == "missing":
            msg = "required key is missing: add it"
        lines.append(f"  - {where}key `{key}`: {msg}")
    return "\n".join(lines)


class Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 core-schema scalars (PyYAML implements 1.1): only true/false are booleans (`no`,
    `on`, `y` stay strings, so `--set name=no` names a model "no"), `012` is twelve, `1:20` is text."""


_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                   list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
Yaml12Loader.add_constructor(_INT, lambda loader, node: int(loader.construct_scalar(node), 0)
                             if loader.construct_scalar(node).lstrip("+-")[:2] in ("0o", "0x")
                             else int(loader.construct_scalar(node), 10))


def yaml_compose_load(text: str, where: str = "YAML") -> tuple[Any, Optional[yaml.Node]]:
    """(data, node) of one YAML document, its expansion checked against edgecv's limits before
    any value is built (a YAML alias bomb is refused, not expanded)."""
    loader = Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_yaml_node(node, where)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def yaml_load(text: str, where: str = "YAML") -> Any:
    return yaml_compose_load(text, where)[0]


def _parse_value(text: str) -> Any:
    try:
        return yaml_load(text, f"--set value {text[:40]!r}")
    except (yaml.YAMLError, RecursionError):
        return text


def apply_overrides(data: dict, overrides: Iterable[str], file: Path) -> dict:
    """Apply `--set key.path=value` overrides; values are parsed as YAML (numbers, lists, bools)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write it as key.path=value, e.g. --set train.warmup.epochs=1")
        path, value = item.split("=", 1)
        keys = path.strip().split(".")
        cursor = data
        for k in keys[:-1]:
            nxt = cursor.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item}: `{k}` is a value, not a section (in {file.name}); "
                                  f"set `{'.'.join(keys[:keys.index(k) + 1])}` itself")
            cursor = nxt
        cursor[keys[-1]] = _parse_value(value)
    return data


def _read_yaml(path: Path) -> tuple[dict, Any]:
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))
        hint = (f": give the file inside it, e.g. {path / ('edgecv.yaml' if 'edgecv.yaml' in inside else inside[0])}"
                if inside else " with no .yaml file in it: give the recipe or target file itself")
        raise ConfigError(f"{path} is a folder{hint}")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        text = decode_utf8(read_limited(path, MAX_YAML_BYTES, "file"), path, "file")
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        data, node = yaml_compose_load(text, str(path))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to be an edgecv file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, found {type(data).__name__}")
    return data, node


def _validate(model: type[M], data: dict, path: Path, node, overrides: Iterable[str] = (), **extra) -> M:
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as e:
        by_keys = {tuple(item.split("=", 1)[0].strip().split(".")): item for item in overrides}
        raise ConfigError(format_validation_error(e, model, path, node, by_keys)) from None


def load_recipe(path: Path | str, overrides: Iterable[str] = ()) -> Recipe:
    path = Path(path).resolve()
    data, node = _read_yaml(path)
    data = apply_overrides(data, overrides, path)
    return _validate(Recipe, data, path, node, overrides, base_dir=path.parent)


def target_search_dirs(recipe_dir: Optional[Path] = None) -> list[Path]:
    dirs = [Path.cwd() / "targets"]
    if recipe_dir is not None:
        dirs += [recipe_dir / "targets"]
    dirs.append(PACKAGE_TARGETS)
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def find_target(name: str, recipe_dir: Optional[Path] = None) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"target file {candidate} not found")
    for d in target_search_dirs(recipe_dir):
        p = d / f"{name}.yaml"
        if p.is_file():
            return p
    known = sorted({p.stem for d in target_search_dirs(recipe_dir) if d.is_dir() for p in d.glob("*.yaml")})
    from edgecv.config.target import FORMAT_ALIASES  # lazy: import cycle (config.target -> config -> config.loader)

    fmt = FORMAT_ALIASES.get(name, name)
    if fmt in FORMAT_PACKAGES:  # `-t tflite`: a format where a target was expected
        building = targets_building(fmt, recipe_dir)
        raise ConfigError(f"{name!r} is an artifact format, not a target: targets that build {fmt}: "
                          f"{', '.join(building) or 'none'} (see `edgecv targets`); or, for a model of your own, "
                          f"`edgecv export MODEL --format {fmt} [--int8|--fp16] --data DIR` builds it with no target file")
    raise ConfigError(f"unknown target {name!r}{did_you_mean(name, known)}; known targets: {', '.join(known) or 'none'} "
                      f"(see `edgecv targets`)")


def load_target(name_or_path: str, recipe_dir: Optional[Path] = None) -> Target:
    path = find_target(name_or_path, recipe_dir).resolve()
    data, node = _read_yaml(path)
    data.setdefault("name", path.stem)
    return _validate(Target, data, path, node)


def targets_building(fmt: str, recipe_dir: Optional[Path] = None) -> list[str]:
    """Names of the known targets with an artifact of format `fmt` (aliases accepted)."""
    from edgecv.config.target import FORMAT_ALIASES  # lazy: import cycle (config.target -> config -> config.loader)

    fmt = FORMAT_ALIASES.get(fmt, fmt)
    found = []
    for name, path in list_targets(recipe_dir):
        try:
            data, _ = _read_yaml(path)
        except EdgecvError:
            continue
        formats = {FORMAT_ALIASES.get(a.get("format"), a.get("format")) for a in data.get("artifacts") or []
                   if isinstance(a, dict)}
        if fmt in formats:
            found.append(name)
    return found


def list_targets(recipe_dir: Optional[Path] = None) -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    for d in target_search_dirs(recipe_dir):
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                found.setdefault(p.stem, p)
    return sorted(found.items())
