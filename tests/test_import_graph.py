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


def test_every_import_inside_a_function_has_a_reason():
    """An edgecv import inside a function is there because its target loads a heavy or optional
    library (TensorFlow, onnx, coremltools ...: computed), or its line (or module) says why with a
    `# lazy:` comment; anything else belongs at module level."""
    from import_graph import lazy_import_reasons

    missing = [f"{module}:{line}" for module, line, reason in lazy_import_reasons(REPO_ROOT) if not reason]
    assert missing == [], ("edgecv imports inside functions with no reason (move them to module level, or add "
                           "`# lazy: why`): " + ", ".join(missing))


def test_a_lazy_import_of_a_light_module_needs_a_written_reason(tmp_path):
    from import_graph import lazy_import_reasons

    pkg = tmp_path / "edgecv"
    for name, text in {"__init__.py": "", "_keras.py": "", "light.py": "X = 1\n",
                       "heavy.py": "from edgecv._keras import keras\n",
                       "user.py": ("def a():\n    from edgecv.light import X\n"
                                   "def b():\n    from edgecv.heavy import keras\n"
                                   "def c():\n    from edgecv.light import X  # lazy: measured start-up\n")}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    reasons = {line: reason for module, line, reason in lazy_import_reasons(tmp_path) if module == "edgecv.user"}
    assert reasons == {2: "", 4: "loads tensorflow", 6: "measured start-up"}
