"""Multi-worker training: two `edgecv build` processes on 127.0.0.1 ports train the tiny model
together under MultiWorkerMirroredStrategy (selected by TF_CONFIG). Each has its own build folder,
as on separate machines; only the chief writes the model, the cache entry and the report."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO
from synthetic import write_recipe


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_writes(tmp_path, tiny_data):
    recipe = write_recipe(tmp_path / "edgecv.yaml", tiny_data, train__finetune__epochs=2)
    target = tmp_path / "one.yaml"
    target.write_text("description: one fp32 TFLite artifact\nartifacts:\n  - {name: fp32, format: tflite}\n")
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        cmd = [sys.executable, "-m", "edgecv.cli.main", "build", "-t", str(target), "-r", str(recipe),
               "-o", str(tmp_path / f"out{i}")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    chief, worker = tmp_path / "out0", tmp_path / "out1"
    report = json.loads((chief / "one" / "report.json").read_text())
    assert report["training"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert report["training"]["workers"] == 2
    assert report["artifacts"][0]["status"] == "ok"
    assert list((chief / ".cache" / "train").iterdir())
    # the other worker trained (its log shows the epochs) but wrote no model, cache entry or report
    assert "fine-tune epoch 2/2" in outputs[1] and "the chief writes the model" in outputs[1]
    assert not (worker / ".cache" / "train").exists() or not list((worker / ".cache" / "train").iterdir())
    assert not (worker / "one").exists()


def test_cluster_role_follows_tensorflows_chief_convention():
    from edgecv.errors import ConfigError
    from edgecv.train.cluster import cluster_role

    def role(cluster, task_type, index):
        return cluster_role({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})})

    two = {"worker": ["a:1", "b:1"]}
    assert cluster_role({}) is None
    assert role(two, "worker", 0).is_chief and not role(two, "worker", 1).is_chief
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert role(with_chief, "chief", 0).is_chief and not role(with_chief, "worker", 0).is_chief
    assert role(with_chief, "worker", 1).workers == 3
    with pytest.raises(ConfigError, match="not a valid cluster spec"):
        cluster_role({"TF_CONFIG": "{not json"})
    with pytest.raises(ConfigError, match="chief and worker tasks only"):
        role({"ps": ["p:1"], "worker": ["a:1"]}, "ps", 0)
