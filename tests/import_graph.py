"""edgecv's package-level import graph, read with `ast` (no import runs), and why each edgecv import
inside a function is there.

A node is a direct child of `edgecv` (a package such as `validate`, or a top-level module such
as `results`); an edge A -> B is any `import`/`from ... import` in A's files naming B, at module
level or inside a function (a lazy import still makes A depend on B). Run it as a script on any
checkout to print the graph, its cycles and the in-function edgecv imports:

An edgecv import inside a function needs a reason, else it belongs at module level:
- its target loads, at import time, a heavy or optional library (TensorFlow through edgecv._keras,
  onnx, coremltools, matplotlib ...: `HEAVY`), which the TensorFlow-free device path and the CLI's
  start-up must not pay; the reason is computed from the target's module-level imports;
- or a `# lazy: <reason>` comment on the statement (or the line above it), or a file-wide
  `# lazy imports: <reason>` line near the top of its module (the CLI's command modules: a command
  loads only what it runs).

    python tests/import_graph.py [ROOT]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Import:
    module: str  # importing module, dotted
    target: str  # imported edgecv module (or package), dotted
    line: int
    in_function: bool


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against the importing module's package
            pkg = module.split(".") if is_package else module.split(".")[:-1]
            pkg = pkg[:len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        # `from edgecv.validate import gates` names the module edgecv.validate.gates
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def edgecv_imports(root: Path) -> list[Import]:
    """Every edgecv import in the package under `root` (the folder holding edgecv/)."""
    root = Path(root)
    found = []
    for path in sorted((root / "edgecv").rglob("*.py")):
        module = _module_name(root, path)
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                names = _targets(child, module, is_package)
                edgecv_names = [n for n in names if n == "edgecv" or n.startswith("edgecv.")]
                if edgecv_names:
                    # the longest name that is a module stands for the statement's target package
                    found.append(Import(module, edgecv_names[0], child.lineno, in_function))
                    for extra in edgecv_names[1:]:
                        found.append(Import(module, extra, child.lineno, in_function))
                visit(child, inner)

        visit(tree, False)
    return found


def package_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "edgecv"


def package_graph(imports: list[Import], known: set[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        a, b = package_of(imp.module), package_of(imp.target)
        if b in known and a != b and b != "edgecv":
            graph[a].add(b)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one node (each holds at least one cycle)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    nodes = sorted(set(graph) | {b for bs in graph.values() for b in bs})

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in nodes:
        if v not in index:
            connect(v)
    return out


def simple_cycles(graph: dict[str, set[str]], limit: int = 100000) -> list[list[str]]:
    """Elementary cycles (each listed once, from its smallest node), at most `limit`."""
    cycles = []
    nodes = sorted(set(graph) | {b for bs in graph.values() for b in bs})
    for start in nodes:
        def walk(v: str, path: list[str], seen: set[str]) -> None:
            for w in sorted(graph.get(v, ())):
                if len(cycles) >= limit:
                    return
                if w == start:
                    cycles.append(list(path))
                elif w > start and w not in seen:
                    seen.add(w)
                    path.append(w)
                    walk(w, path, seen)
                    path.pop()
                    seen.discard(w)

        walk(start, [start], {start})
    return cycles


# Libraries an import may not pull in at module level where a lighter path needs the module:
# edgecv._keras stands for TensorFlow (tf and keras load on first use, and a module holding them
# at import time may use them there).
HEAVY = frozenset({"tensorflow", "tf_keras", "keras", "onnx", "onnxruntime", "tf2onnx", "coremltools", "tensorrt",
                   "cuda", "tensorflow_model_optimization", "ai_edge_litert", "tflite_runtime", "matplotlib",
                   "scipy", "sklearn", "paramiko", "h5py", "starlette", "uvicorn", "prometheus_client",
                   "tensorflow_serving", "grpc", "jinja2", "pycocotools"})
KERAS_MODULE = "edgecv._keras"


def _module_level_imports(root: Path) -> dict[str, tuple[set[str], set[str]]]:
    """module -> (edgecv modules, third-party top-level names) imported at module level."""
    out = {}
    for path in sorted((root / "edgecv").rglob("*.py")):
        module = _module_name(root, path)
        edgecv_names, third = set(), set()
        for node in ast.parse(path.read_text(), str(path)).body:
            for n in ([node] if not isinstance(node, (ast.If, ast.Try)) else list(ast.walk(node))):
                if isinstance(n, ast.Import):
                    for a in n.names:
                        (edgecv_names.add(a.name) if a.name.startswith("edgecv") else third.add(a.name.split(".")[0]))
                elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                    if n.module.startswith("edgecv"):
                        edgecv_names.add(n.module)
                        edgecv_names.update(f"{n.module}.{a.name}" for a in n.names)
                    else:
                        third.add(n.module.split(".")[0])
        out[module] = (edgecv_names, third)
    return out


def heavy_libraries(module: str, table: dict, seen: set | None = None) -> set[str]:
    """The heavy libraries importing `module` loads (its module-level imports, transitively, and
    its parent packages')."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    if module == KERAS_MODULE:
        return {"tensorflow"}
    edgecv_names, third = table.get(module, (set(), set()))
    found = third & HEAVY
    parts = module.split(".")
    for i in range(2, len(parts)):
        found |= heavy_libraries(".".join(parts[:i]), table, seen)
    for name in edgecv_names:
        if name in table:
            found |= heavy_libraries(name, table, seen)
    return found


def lazy_import_reasons(root: Path) -> list[tuple[str, int, str]]:
    """(module, line, reason) for every edgecv import statement inside a function; reason "" when
    none is given or computed."""
    root = Path(root)
    table = _module_level_imports(root)
    file_reason, lines_of = {}, {}
    for path in sorted((root / "edgecv").rglob("*.py")):
        module = _module_name(root, path)
        lines_of[module] = path.read_text().splitlines()
        for line in lines_of[module][:40]:
            if line.startswith("# lazy imports:"):
                file_reason[module] = line.split(":", 1)[1].strip()
    by_statement: dict[tuple[str, int], list[str]] = defaultdict(list)
    for imp in edgecv_imports(root):
        if imp.in_function:
            by_statement[(imp.module, imp.line)].append(imp.target)
    out = []
    for (module, line), targets in sorted(by_statement.items()):
        lines = lines_of[module]
        end = line  # the statement's last line: a parenthesised import runs on to its `)`
        if "(" in lines[line - 1] and ")" not in lines[line - 1]:
            while end < len(lines) and ")" not in lines[end - 1]:
                end += 1
        comment = next((text.split("# lazy:", 1)[1].strip() for text in lines[max(0, line - 2):end]
                        if "# lazy:" in text), "")
        heavy = set()
        for target in targets:
            if target in table:
                heavy |= heavy_libraries(target, table)
        reason = comment or (f"loads {', '.join(sorted(heavy))}" if heavy else "") or file_reason.get(module, "")
        out.append((module, line, reason))
    return out


def summary(root: Path) -> dict:
    root = Path(root)
    known = {p.name if p.is_dir() else p.stem for p in (root / "edgecv").iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.name != "__init__.py")}
    imports = edgecv_imports(root)
    graph = package_graph(imports, known)
    statements = {(i.module, i.line) for i in imports}
    in_function = {(i.module, i.line) for i in imports if i.in_function}
    return {"graph": graph, "components": strongly_connected(graph), "cycles": simple_cycles(graph),
            "statements": len(statements), "in_function": sorted(in_function), "imports": imports}


def describe(root: Path) -> str:
    s = summary(root)
    lines = ["edgecv package import graph (A -> B: A imports B, in-function imports counted):"]
    for a in sorted(s["graph"]):
        lines.append(f"  {a} -> {', '.join(sorted(s['graph'][a]))}")
    lines.append(f"components with a cycle: {len(s['components'])}"
                 + "".join(f"\n  {' <-> '.join(c)}" for c in s["components"]))
    lines.append(f"elementary package cycles: {len(s['cycles'])}"
                 + "".join(f"\n  {' -> '.join(c + [c[0]])}" for c in s["cycles"][:20]))
    lines.append(f"edgecv import statements: {s['statements']}, inside functions: {len(s['in_function'])}")
    reasons = lazy_import_reasons(root)
    kinds = defaultdict(int)
    for _, _, reason in reasons:
        kinds["loads a heavy library" if reason.startswith("loads ") else (reason and "written reason") or "NO REASON"] += 1
    lines.append("in-function edgecv imports by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT))
