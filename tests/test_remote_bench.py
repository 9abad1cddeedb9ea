"""`edgecv bench --host` against a real OpenSSH server the test starts on 127.0.0.1.

The server gets a host key and accepts one user key, both made here; known_hosts lists the host
key. The remote `edgecv bench` runs with this interpreter (the "device's Python").
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import REPO

pytest.importorskip("paramiko", reason="`bench --host` needs paramiko: pip install 'edgecv[remote]'")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
QUIET = Console(file=open("/dev/null", "w"))
DEVICE_PYTHON = f"env PYTHONPATH={REPO} {sys.executable}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).is_file() or not shutil.which("ssh-keygen"):
        pytest.skip("no OpenSSH server here: apt-get install openssh-server")
    d = tmp_path_factory.mktemp("sshd")
    host_pub = keygen(d / "host_key")
    user_pub = keygen(d / "user_key")
    (d / "authorized_keys").write_text(user_pub + "\n")
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # the privilege separation directory sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=open(d / "sshd.log", "w"))
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.2)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    yield {"host": f"{getpass.getuser()}@127.0.0.1:{port}", "identity": d / "user_key", "known_hosts": known,
           "port": port, "dir": d}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_recipe_path):
    from edgecv.orchestrator.runner import run_build

    out = tmp_path_factory.mktemp("remote-build")
    target = out / "device.yaml"
    target.write_text("description: one int8 TFLite artifact\nruntime: {threads: 1}\n"
                      "artifacts:\n  - {name: int8, format: tflite, precision: int8}\ngates: {latency_p50_ms_max: 10000}\n")
    result = run_build(tiny_recipe_path, [str(target)], out, console=QUIET)
    assert result.exit_code == 0
    return out / "device"


def bench_host(sshd, artifact, *args, python=DEVICE_PYTHON, known_hosts=None):
    from edgecv.cli.main import app

    return CliRunner().invoke(app, ["bench", str(artifact), "--host", sshd["host"], "--identity",
                                    str(sshd["identity"]), "--known-hosts", str(known_hosts or sshd["known_hosts"]),
                                    "--remote-python", python, "--runs", "3", "--seconds", "0", *args])


def test_bench_host_runs_there_and_merges_into_the_report(sshd, built, tiny_data, tmp_path):
    artifact = built / "tiny_int8.tflite"
    r = bench_host(sshd, artifact, "--data", str(tiny_data), "--resize", "resize", "--json", str(tmp_path / "d.json"))
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "d.json").read_text())
    assert res["remote"]["host"] == sshd["host"] and res["accuracy"]["images"] == 60
    assert res["latency"]["runs"] >= 3 and res["artifact"]["path"] == str(artifact)
    # the device's numbers sit beside the build host's, and the gates were re-checked with them
    report = json.loads((built / "report.json").read_text())
    entry = next(a for a in report["artifacts"] if a["name"] == "int8")
    assert entry["device_results"][-1]["remote"]["host"] == sshd["host"]
    assert entry["device_results"][-1]["latency"]["p50_ms"] == res["latency"]["p50_ms"]
    assert any(g["source"] == "device" and g["gate"] == "latency_p50_ms_max" for g in entry["gates"])
    html = (built / "report.html").read_text()
    assert 'id="device-results"' in html and sshd["host"] in html
    # the temporary folder on the device is gone
    assert not Path(res["remote"]["workdir"]).exists()


def test_unknown_host_key_is_refused(sshd, built, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = bench_host(sshd, built / "tiny_int8.tflite", "--random", known_hosts=empty)
    assert r.exit_code == 5, r.output
    assert "does not trust unknown hosts" in r.output and "ssh-keyscan -p" in r.output


def test_changed_host_key_is_refused(sshd, built, tmp_path):
    other = keygen(tmp_path / "other")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd['port']} {other}\n")
    r = bench_host(sshd, built / "tiny_int8.tflite", "--random", known_hosts=wrong)
    assert r.exit_code == 5 and "does not match" in r.output, r.output


def test_device_without_edgecv_gets_the_install_command(sshd, built):
    # -S: no site-packages, so this Python cannot import edgecv (a fresh device)
    r = bench_host(sshd, built / "tiny_int8.tflite", "--random", python=f"{sys.executable} -S")
    assert r.exit_code == 5, r.output
    assert "has no edgecv" in r.output and "-m pip install 'edgecv==" in r.output


def test_bad_host_spec_is_a_clear_error(built):
    from edgecv.cli.main import app

    r = CliRunner().invoke(app, ["bench", str(built / "tiny_int8.tflite"), "--random", "--host", "no-user-here"])
    assert r.exit_code == 2 and "user@host" in r.output


def test_build_device_benches_every_artifact_there(sshd, built, tiny_recipe_path):
    from edgecv.cli.main import app

    before = {d["remote"]["workdir"] for d in json.loads((built / "report.json").read_text())["artifacts"][0]["device_results"]}
    r = CliRunner().invoke(app, ["build", "-t", str(built.parent / "device.yaml"), "-r", str(tiny_recipe_path),
                                 "-o", str(built.parent), "--device", sshd["host"], "--identity", str(sshd["identity"]),
                                 "--known-hosts", str(sshd["known_hosts"]), "--remote-python", DEVICE_PYTHON])
    assert r.exit_code == 0, r.output
    entry = json.loads((built / "report.json").read_text())["artifacts"][0]
    assert entry["device_results"] and entry["device_results"][-1]["remote"]["workdir"] not in before
    # the validation split went along in class folders: the device measured accuracy on it
    assert entry["device_results"][-1]["accuracy"]["images"] == 15


def test_host_spec_parsing():
    from edgecv.errors import EdgecvError
    from edgecv.remote.ssh import HostSpec

    assert HostSpec.parse("pi@raspberrypi.local") == HostSpec("pi", "raspberrypi.local", 22)
    assert HostSpec.parse("nvidia@10.0.0.5:2222") == HostSpec("nvidia", "10.0.0.5", 2222)
    assert HostSpec.parse("me@[::1]:22").host == "::1"
    for bad in ("hostonly", "u@h:99999", "u@h:port"):
        with pytest.raises(EdgecvError):
            HostSpec.parse(bad)


# ---- issue 23: what goes to the device, quoting, a hung device, bad options ---------------------
def device_python(tmp_path, body: str = "") -> str:
    """A `--remote-python` wrapper on the "device": runs `body` (shell) first, then this Python."""
    script = tmp_path / "device-python"
    script.write_text(f"#!/bin/sh\n{body}\nexec env PYTHONPATH={REPO} {sys.executable} \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def hostile_data(tmp_path, tiny_data) -> tuple:
    """Class folders of real images plus everything that must not leave this machine."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_ed25519.png").write_bytes(b"PRIVATE KEY")
    first = sorted(p for p in data.iterdir() if p.is_dir())[0]
    (first / "key.png").symlink_to(outside / "id_ed25519.png")  # a link leaving --data
    (first / "keys").symlink_to(outside)  # a link to a folder outside
    (first / "loop").symlink_to(data)  # a loop
    (first / "gone.png").symlink_to(tmp_path / "nowhere.png")  # broken
    (first / ".env.png").write_bytes(b"SECRET=1")
    (first / "notes.txt").write_text("not an image")
    (data / ".ssh").mkdir()
    (data / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    images = sum(1 for p in tiny_data.rglob("*.png"))
    return data, images


def test_only_the_data_folders_images_are_uploaded(sshd, built, tiny_data, tmp_path):
    data, images = hostile_data(tmp_path, tiny_data)
    listing = tmp_path / "uploaded.txt"
    python = device_python(tmp_path, f'for a in "$@"; do case "$a" in */data) find "$a" > {listing};; esac; done')
    r = bench_host(sshd, built / "tiny_int8.tflite", "--data", str(data), "--resize", "resize", "--json",
                   str(tmp_path / "d.json"), python=python)
    assert r.exit_code == 0, r.output
    sent = listing.read_text()
    for secret in ("key.png", "keys", "loop", "gone.png", ".env.png", "notes.txt", ".ssh", "id_ed25519"):
        assert secret not in sent, sent
        assert secret in r.output  # each skipped entry is listed with its reason
    assert "leaving" in r.output and "broken symbolic link" in r.output
    assert json.loads((tmp_path / "d.json").read_text())["accuracy"]["images"] == images


def test_remote_python_is_quoted(sshd, built, tmp_path):
    marker = tmp_path / "injected"
    r = bench_host(sshd, built / "tiny_int8.tflite", "--random", python=f"$(touch {marker})python3")
    assert r.exit_code == 5, r.output
    assert not marker.exists()


def test_a_hung_device_is_a_device_error_and_its_folder_is_removed(sshd, built, tmp_path):
    args = tmp_path / "args.txt"
    # `edgecv bench` on the device never returns
    python = device_python(tmp_path, f'case "$*" in *" bench "*) echo "$@" > {args}; sleep 600;; esac')
    r = bench_host(sshd, built / "tiny_int8.tflite", "--random", "--remote-timeout", "5", python=python)
    assert r.exit_code == 5, r.output
    assert "within 5 s" in r.output and "Traceback" not in r.output
    workdir = Path(args.read_text().split()[3]).parent
    assert workdir.name.startswith("edgecv-bench-") and not workdir.exists()


def test_bad_identity_and_known_hosts_are_bad_input(sshd, built, tmp_path):
    from edgecv.cli.main import app

    not_a_key = tmp_path / "key"
    not_a_key.write_text("hello\n")
    base = ["bench", str(built / "tiny_int8.tflite"), "--random", "--host", sshd["host"]]
    for extra in (["--identity", str(not_a_key)], ["--identity", str(tmp_path / "missing")],
                  ["--known-hosts", str(tmp_path / "missing")]):
        r = CliRunner().invoke(app, [*base, *extra])
        assert r.exit_code == 2, (extra, r.output)


def test_the_device_workdir_is_parsed_strictly():
    from edgecv.remote.bench import parse_workdir
    from edgecv.remote.ssh import RemoteError

    assert str(parse_workdir("Welcome to the Pi!\n/tmp/edgecv-bench-x1_y\n")) == "/tmp/edgecv-bench-x1_y"
    for bad in ("", "/", "/home/pi", "/tmp/edgecv-bench-x; rm -rf ~", "tmp/edgecv-bench-x", "/tmp/../edgecv-bench-x"):
        with pytest.raises(RemoteError):
            parse_workdir(bad)
