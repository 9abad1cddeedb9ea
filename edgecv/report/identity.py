"""What tells two machines' numbers apart: each artifact's sha256 (a different file?), the runtime
and int8 arithmetic it ran with, and the CPU's instruction sets (a different runtime path?).

The same QDQ int8 ONNX can score 97.92 % on one x86 host and 83.33 % on another under
onnxruntime's default fused kernels; with these lines in every report form a reader sees whether
the artifact or the way it was run differed."""

from __future__ import annotations

from typing import Optional


def isa_line(environment: dict) -> str:
    """'CPU instruction sets: avx2 avx512_vnni ... (int8 dot product: yes, from /proc/cpuinfo)'."""
    isa = environment.get("cpu_isa") or {}
    if not isa:
        return "CPU instruction sets: not recorded"
    flags = " ".join(isa.get("flags") or []) or "none of those edgecv records"
    x86 = str(environment.get("machine", "")).lower() in ("x86_64", "amd64", "i686", "i386") or "avx2" in flags
    dot = "yes" if isa.get("int8_dot_product") else (
        "no, so onnxruntime's default u8s8 int8 kernels can saturate here" if x86 else "no")
    return f"CPU instruction sets: {flags} (int8 dot product: {dot}; read from {isa.get('source', 'unknown')})"


def session_text(session_options: Optional[dict]) -> str:
    """'qdq: session.disable_quant_qdq=1' (or '-' for runtimes other than onnxruntime)."""
    if not session_options:
        return "-"
    entries = session_options.get("session_config") or {}
    config = ", ".join(f"{k}={v}" for k, v in entries.items()) or "onnxruntime defaults"
    if session_options.get("qdq_nodes") is False and not entries:
        return f"float graph (no Q/DQ nodes): {config}"
    return f"{session_options.get('int8_semantics')}: {config}"


def runtime_text(runtime: Optional[dict]) -> str:
    """'onnxruntime 1.32.0 (CPUExecutionProvider)', 'ai-edge-litert', ..."""
    if not runtime:
        return "-"
    lib = runtime.get("library") or runtime.get("format") or "-"
    version = runtime.get(lib) or ""
    providers = runtime.get("providers")
    return f"{lib} {version}".strip() + (f" ({', '.join(providers)})" if providers else "")


def identity_rows(report) -> list:
    """Per artifact: file, full sha256, size, the runtime and the int8 arithmetic it was validated with."""
    rows = []
    for a in report.artifacts:
        if not a.sha256:  # not built here, or failed: no file to identify
            continue
        so = a.session_options.model_dump() if a.session_options is not None else None
        rows.append({"artifact": a.name, "file": a.path or "-", "sha256": a.sha256 or "-",
                     "runtime": runtime_text(a.runtime),
                     "int8": "not recorded" if so is None and a.format == "onnx" else session_text(so)})
    return rows


def markdown_identity(report) -> list:
    """The Markdown lines: a table of artifact files, hashes and runtime settings, then the CPU's ISA."""
    rows = identity_rows(report)
    if not rows:
        return []
    lines = ["| artifact | file | sha256 | runtime | int8 arithmetic |", "|:---|:---|:---|:---|:---|"]
    lines += [f"| {r['artifact']} | `{r['file']}` | `{r['sha256']}` | {r['runtime']} | {r['int8']} |" for r in rows]
    return lines + ["", isa_line(report.environment) + "."]
