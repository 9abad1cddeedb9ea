"""The TensorRT and JetPack versions a device bundle expects, and the check `edgecv engine build` /
`engine validate` run before touching an engine.

An engine runs only on the TensorRT that built it, and a graph may need a TensorRT feature: the
detection post-process's EfficientNMS_TRT plugin exists from TensorRT 8.0, its `class_agnostic`
attribute (the fast NMS) from 8.6 (JetPack 6; JetPack 5.1 ships 8.5). The bundle records what it
expects (`expects` in bundle.json: the artifact's `tensorrt:` / `jetpack:` options and what its
graph needs) and a device with other versions is refused with a message naming both, before any
build, rather than failing inside the ONNX parser or, worse, building an engine that ignores an
attribute.

Requirements are comma-separated clauses `>=8.6`, `<11`, `==10` (`==10` matches every 10.x).
JetPack is read from the `nvidia-jetpack` package when installed, else from /etc/nv_tegra_release
(L4T R32 -> JetPack 4, R35 -> 5, R36 -> 6); a machine without either is not a Jetson.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Optional

from edgecv.errors import InputError

_CLAUSE = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)*)\s*$")
L4T_TO_JETPACK = {32: 4, 34: 5, 35: 5, 36: 6, 38: 7}


class VersionMismatch(InputError):
    """The device's TensorRT or JetPack is not the one the bundle was written for (exit 2)."""


def parse_requirement(text: str) -> list[tuple[str, tuple[int, ...]]]:
    clauses = []
    for part in str(text).split(","):
        m = _CLAUSE.match(part)
        if not m:
            raise ValueError(f"version requirement {text!r}: write clauses like '>=8.6', '<11' or '==10', comma-separated")
        clauses.append((m.group(1), tuple(int(x) for x in m.group(2).split("."))))
    return clauses


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(text))[:4])


def satisfies(version: str, requirement: str) -> bool:
    v = _version(version)
    for op, want in parse_requirement(requirement):
        head = v[:len(want)] if op == "==" else v + (0,) * max(0, len(want) - len(v))
        ok = {">=": head >= want, ">": head > want, "<=": head <= want, "<": head < want, "==": head == want}[op]
        if not ok:
            return False
    return True


def combine(*requirements: Optional[str]) -> Optional[str]:
    parts = [r for r in requirements if r]
    return ",".join(parts) if parts else None


def jetpack_version() -> Optional[str]:
    """This Jetson's JetPack version ('6.1', or '6' from the L4T release alone); None off a Jetson."""
    try:
        out = subprocess.run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().split("-")[0].split("+")[0]
    except (OSError, subprocess.SubprocessError):
        pass
    release = Path("/etc/nv_tegra_release")
    if release.is_file():
        m = re.search(r"R(\d+)", release.read_text(errors="replace"))
        if m and int(m.group(1)) in L4T_TO_JETPACK:
            return str(L4T_TO_JETPACK[int(m.group(1))])
    return None


def check_device(expects: Optional[dict], tensorrt_version: str, jetpack: Optional[str], bundle: str) -> None:
    """Raise VersionMismatch naming what the bundle expects, what this device has, and what to do."""
    if not expects:
        return
    problems = []
    want_trt, want_jp = expects.get("tensorrt"), expects.get("jetpack")
    why = "; ".join(expects.get("reasons") or [])
    if want_trt and not satisfies(tensorrt_version, want_trt):
        problems.append(f"TensorRT {tensorrt_version} here, the bundle expects TensorRT {want_trt}")
    if want_jp:
        if jetpack is None:
            problems.append(f"this machine is not a Jetson (no nvidia-jetpack package, no /etc/nv_tegra_release); "
                            f"the bundle expects JetPack {want_jp}")
        elif not satisfies(jetpack, want_jp):
            problems.append(f"JetPack {jetpack} here, the bundle expects JetPack {want_jp}")
    if problems:
        raise VersionMismatch(f"{bundle}: {'; '.join(problems)}" + (f" ({why})" if why else "")
                              + ". Build the engines on a device that matches, or rebuild the bundle for this one "
                                "(the tensorrt artifact's options `tensorrt:` and `jetpack:` in the target file)")
