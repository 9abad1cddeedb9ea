"""`edgecv bench` on third-party and edgecv artifacts, in an environment without TensorFlow."""

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, shared_path

# What `bench` needs for a TFLite artifact: numpy, the LiteRT interpreter, the CLI libraries.
BENCH_PACKAGES = ["numpy", "numpy.libs", "ai_edge_litert", "typer", "click", "rich", "markdown_it", "mdurl",
                  "pygments", "PIL", "pillow.libs", "shellingham", "typing_extensions.py", "annotated_doc",
                  "pydantic", "pydantic_core", "annotated_types", "typing_inspection"]


@pytest.fixture(scope="module")
def no_tf_python(tmp_path_factory) -> str:
    """A real virtual environment holding only the bench packages (linked from this one) and edgecv."""
    root = tmp_path_factory.mktemp("venv-no-tf")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    pkgs = root / "pkgs"
    pkgs.mkdir()
    source = Path(next(p for p in site.getsitepackages() if (Path(p) / "numpy").exists()))
    for name in BENCH_PACKAGES:
        if (source / name).exists():
            (pkgs / name).symlink_to(source / name)
    (pkgs / "edgecv").symlink_to(REPO / "edgecv")
    py = root / "venv" / "bin" / "python"
    venv_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    (Path(venv_site) / "edgecv-bench.pth").write_text(str(pkgs) + "\n")
    probe = subprocess.run([str(py), "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    return str(py)


def run_bench(python: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "edgecv.cli.main", "bench", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("model", ["mobilenet_v2_1.0_224_quant.tflite", "movenet_single_pose_lightning_ptq.tflite",
                                   "deeplabv3_mnv2_pascal_quant.tflite"])
def test_bench_third_party_tflite_without_tensorflow(no_tf_python, tmp_path, model):
    path = shared_path("models", model)
    r = run_bench(no_tf_python, str(path), "--random", "--runs", "5", "--seconds", "0", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["schema"] == "edgecv.bench/1" and res["artifact"]["format"] == "tflite"
    assert res["latency"]["runs"] >= 5 and 0 < res["latency"]["p50_ms"] <= res["latency"]["p99_ms"]
    assert res["device"]["cpu_count"] >= 1 and res["device"]["cpu"]
    assert "tensorflow" not in res["device"]["libraries"] and res["runtime"]["library"] == "ai_edge_litert"


def test_bench_edgecv_artifact_with_accuracy_without_tensorflow(no_tf_python, tmp_path, tiny_model, tiny_calibration, tiny_data):
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter

    batches, calib = tiny_calibration
    art = get_exporter("tflite")().export(tiny_model, ArtifactSpec(name="q", format="tflite", precision="int8"),
                                          tmp_path, ExportContext("tiny", batches, calib.sha256))
    (tmp_path / "labels.txt").write_text("".join(f"{c}\n" for c in tiny_model.info["class_names"]))
    r = run_bench(no_tf_python, str(art.path), "--data", str(tiny_data), "--resize", "resize", "--batch", "1",
                  "--batch", "4", "--runs", "5", "--seconds", "0", "--threads", "1", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["accuracy"]["images"] == 60 and res["accuracy"]["top1"] >= 80
    assert [lat["batch"] for lat in res["latency_by_batch"]] == [1, 4]
    assert res["artifact"]["sha256"] == art.sha256() and res["threads"] == 1
    assert res["memory"]["peak_rss_mb"] > 0


def test_bench_needs_data_or_random(tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    r = CliRunner().invoke(app, ["bench", str(model)])
    assert r.exit_code == 2 and "--random" in r.output
