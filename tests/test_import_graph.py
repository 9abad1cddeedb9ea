"""Imports flow one way: edgecv's package-level import graph (imports inside functions counted, read
with `ast`) has no cycle. The graph is printed (`pytest -s`) so a reviewer sees the layers."""

from import_graph import REPO_ROOT, describe, summary


def test_package_imports_have_no_cycle():
    print(describe(REPO_ROOT))
    s = summary(REPO_ROOT)
    assert s["components"] == [], (
        "edgecv packages import each other in a loop (move the shared part down a layer, or pass it in): "
        + "; ".join(" <-> ".join(c) for c in s["components"]))


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """A lazy import still makes a package depend on another: a loop hidden in a function is found."""
    pkg = tmp_path / "edgecv"
    for name, text in {"__init__.py": "", "a/__init__.py": "", "b/__init__.py": "",
                       "a/x.py": "from edgecv.b import y\n",
                       "b/y.py": "def f():\n    from edgecv.a.x import g\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    s = summary(tmp_path)
    assert s["components"] == [["a", "b"]] and len(s["in_function"]) == 1
