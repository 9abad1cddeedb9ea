"""`edgecv bench --host user@host`: benchmark an artifact on a device over SSH.

Copies a minimal bundle to a temporary folder on the device (the artifact, its sidecars —
labels.txt, preprocessing.json — and the images with their class folders), runs `edgecv bench`
there with the device's Python, fetches the JSON result and removes the folder. The result is the
same `edgecv.bench/1` document a run on the device writes, with `remote` saying where it ran.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path, PurePosixPath
from typing import Callable, List, Optional, Sequence

import edgecv
from edgecv.remote.ssh import HostSpec, RemoteError, connect, put, quote, run

SIDECARS = ("labels.txt", "preprocessing.json")
INSTALL_HINT = "{python} -m pip install 'edgecv=={version}'"


def remote_edgecv_version(client, python: str) -> str:
    """The device's edgecv version, or RemoteError with the one command that installs it."""
    rc, out, err = run(client, f"{python} -c 'import edgecv; print(edgecv.__version__)'", timeout=60)
    if rc != 0:
        why = (err.strip().splitlines() or ["no output"])[-1]
        install = INSTALL_HINT.format(python=python, version=edgecv.__version__)
        raise RemoteError(f"the device has no edgecv for `{python}` ({why}); install it there (no extras: "
                          f"the device path, no TensorFlow): {install}  — or name another Python with --remote-python")
    return out.strip()


def bench_args(options: dict) -> List[str]:
    """`edgecv bench` options for the device (what the user asked for here)."""
    args: List[str] = []
    if options.get("threads"):
        args += ["--threads", str(options["threads"])]
    for b in options.get("batch") or [1]:
        args += ["--batch", str(b)]
    for key in ("resize", "runs", "seconds", "int8_semantics"):
        if options.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(options[key])]
    return args


def bench_on_host(artifact: Path, host: str, data: Optional[Path], random_inputs: bool, options: dict,
                  labels: Optional[Path] = None, remote_python: str = "python3", identity: Optional[Path] = None,
                  known_hosts: Optional[Path] = None, log: Callable[[str], None] = print) -> dict:
    """Run `edgecv bench` for `artifact` on `host` (user@host[:port]); returns the bench result."""
    from edgecv.tasks.classification_folder import default_labels

    spec = HostSpec.parse(host)
    if data is None and not random_inputs:
        raise ValueError("give --data DIR (images, or class sub-folders for accuracy) or --random")
    labels = labels or default_labels(artifact)
    client = connect(spec, identity, known_hosts)
    try:
        version = remote_edgecv_version(client, remote_python)
        if version != edgecv.__version__:
            log(f"note: the device has edgecv {version}, this machine {edgecv.__version__}")
        rc, out, err = run(client, f"{remote_python} -c 'import tempfile; print(tempfile.mkdtemp(prefix=\"edgecv-bench-\"))'")
        if rc != 0:
            raise RemoteError(f"{spec}: cannot make a temporary folder: {err.strip()}")
        workdir = PurePosixPath(out.strip())
        try:
            return _bench_in(client, spec, workdir, artifact, data, labels, options, remote_python, log)
        finally:
            run(client, f"rm -rf {quote(workdir)}", timeout=120)
    finally:
        client.close()


def _bench_in(client, spec: HostSpec, workdir: PurePosixPath, artifact: Path, data: Optional[Path],
              labels: Optional[Path], options: dict, python: str, log) -> dict:
    sftp = client.open_sftp()
    try:
        sent = put(sftp, artifact, workdir / artifact.name)
        for name in SIDECARS:
            if (artifact.parent / name).is_file() and not (labels and name == "labels.txt"):
                sent += put(sftp, artifact.parent / name, workdir / name)
        args = [str(workdir / artifact.name)]
        if labels:
            sent += put(sftp, labels, workdir / "labels.txt")
            args += ["--labels", str(workdir / "labels.txt")]
        if data is not None:
            sent += put(sftp, data, workdir / "data")
            args += ["--data", str(workdir / "data")]
        else:
            args += ["--random"]
        log(f"copied {sent / 1e6:.2f} MB to {spec}:{workdir}; running edgecv bench there")
        result_path = workdir / "result.json"
        command = f"{python} -m edgecv.cli.main bench " + " ".join(
            shlex.quote(a) for a in [*args, *bench_args(options), "--json", str(result_path)])
        rc, out, err = run(client, command)
        if rc != 0:
            tail = "\n".join((err or out).strip().splitlines()[-8:])
            raise RemoteError(f"`edgecv bench` failed on {spec} (exit {rc}):\n{tail}")
        with sftp.open(str(result_path)) as f:
            result = json.loads(f.read().decode())
    finally:
        sftp.close()
    result["remote"] = {"host": str(spec), "python": python, "workdir": str(workdir)}
    # the device saw a copy: report the paths the user knows
    result["artifact"]["path"] = str(artifact)
    result["inputs"] = "random uint8" if data is None else str(data)
    return result


def copy_split(samples: Sequence, class_names: Optional[Sequence[str]], dest: Path) -> Path:
    """A folder of the given samples' images, in class sub-folders where the task has classes (so the
    device's `edgecv bench` measures accuracy), flat otherwise."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        src = Path(s.path)
        sub = dest / class_names[s.label] if class_names and s.label is not None else dest
        sub.mkdir(exist_ok=True)
        shutil.copyfile(src, sub / f"{i:05d}{src.suffix.lower()}")
    return dest
