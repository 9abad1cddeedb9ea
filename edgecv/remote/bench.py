"""`edgecv bench --host user@host`: benchmark an artifact on a device over SSH.

Copies a minimal bundle to a temporary folder on the device (the artifact, its sidecars —
labels.txt, preprocessing.json — and the images with their class folders), runs `edgecv bench`
there with the device's Python, fetches the JSON result and removes the folder. The result is the
same `edgecv.bench/1` document a run on the device writes, with `remote` saying where it ran.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Callable, List, Optional, Sequence

import edgecv
from edgecv.remote.ssh import HostSpec, RemoteError, Upload, connect, put, quote, remote_command, run
from edgecv.errors import InputError
from edgecv.report.bench_result import check_bench_result
from edgecv.tasks.classification_folder import default_labels

SIDECARS = ("labels.txt", "preprocessing.json")
INSTALL_HINT = "{python} -m pip install 'edgecv=={version}'"
DEFAULT_TIMEOUT = 600.0  # seconds one command on the device may take (--remote-timeout)
MKDTEMP = "import tempfile; print(tempfile.mkdtemp(prefix='edgecv-bench-'))"
WORKDIR = re.compile(r"^/[A-Za-z0-9._/-]*/edgecv-bench-[A-Za-z0-9_]+$")


def remote_edgecv_version(client, python: str, timeout: float = 60.0) -> str:
    """The device's edgecv version, or RemoteError with the one command that installs it."""
    rc, out, err = run(client, remote_command(python, "-c", "import edgecv; print(edgecv.__version__)"),
                       timeout=min(60.0, timeout))
    if rc != 0:
        why = (err.strip().splitlines() or ["no output"])[-1]
        install = INSTALL_HINT.format(python=python, version=edgecv.__version__)
        raise RemoteError(f"the device has no edgecv for `{python}` ({why}); install it there (no extras: "
                          f"the device path, no TensorFlow): {install}  — or name another Python with --remote-python")
    return (out.strip().splitlines() or [""])[-1].strip()


def parse_workdir(out: str) -> PurePosixPath:
    """The folder mkdtemp made on the device: the last line of its output (a login banner may come
    first), which must look like one, so that `rm -rf` can never be given anything else."""
    line = (out.strip().splitlines() or [""])[-1].strip()
    if not WORKDIR.match(line) or "/../" in f"{line}/" or "/./" in f"{line}/":
        raise RemoteError(f"the device answered {line[:200]!r} when asked for a temporary folder (python's "
                          "tempfile.mkdtemp): expected a path such as /tmp/edgecv-bench-abc123")
    return PurePosixPath(line)


MAX_RESULT_BYTES = 16 << 20


def _device_result(raw: bytes, spec: HostSpec) -> dict:
    """The device's bench result, checked like a file given to `report --merge`."""
    try:
        if len(raw) > MAX_RESULT_BYTES:
            raise ValueError(f"over {MAX_RESULT_BYTES >> 20} MB")
        return check_bench_result(json.loads(raw.decode()), PurePosixPath(f"{spec}:result.json"))
    except (ValueError, RecursionError, InputError) as e:  # UnicodeDecodeError and bad JSON are ValueErrors
        raise RemoteError(f"{spec} returned a bench result edgecv cannot use: {str(e)[:300]}") from None


def list_skipped(upload: Upload, log: Callable[[str], None], shown: int = 10) -> None:
    """Say what was not sent to the device, and why (links leaving --data, hidden files ...)."""
    if not upload.skipped:
        return
    log(f"not sent to the device: {len(upload.skipped)} file(s) or folder(s)")
    for path, why in upload.skipped[:shown]:
        log(f"  skipped {path}: {why}")
    if len(upload.skipped) > shown:
        log(f"  ... and {len(upload.skipped) - shown} more")


def bench_args(options: dict) -> List[str]:
    """`edgecv bench` options for the device (what the user asked for here)."""
    args: List[str] = []
    if options.get("threads"):
        args += ["--threads", str(options["threads"])]
    for b in options.get("batch") or [1]:
        args += ["--batch", str(b)]
    for key in ("resize", "runs", "seconds", "int8_semantics", "task", "input_range"):
        if options.get(key) is not None:  # one token: a value may start with "-" (--input-range=-1,1)
            args += [f"--{key.replace('_', '-')}={options[key]}"]
    return args


def bench_on_host(artifact: Path, host: str, data: Optional[Path], random_inputs: bool, options: dict,
                  labels: Optional[Path] = None, remote_python: str = "python3", identity: Optional[Path] = None,
                  known_hosts: Optional[Path] = None, log: Callable[[str], None] = print,
                  timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Run `edgecv bench` for `artifact` on `host` (user@host[:port]); returns the bench result.
    `timeout`: seconds any one command on the device may take before it counts as hung."""
    spec = HostSpec.parse(host)
    remote_command(remote_python)  # an empty --remote-python is bad input before connecting
    if not 0 < timeout < float("inf"):
        raise InputError(f"--remote-timeout {timeout}: give a number of seconds above 0")
    if data is None and not random_inputs:
        raise ValueError("give --data DIR (images, or class sub-folders for accuracy) or --random")
    if data is not None and not Path(data).is_dir():
        raise InputError(f"--data {data}: not a folder")
    labels = labels or default_labels(artifact)
    client = connect(spec, identity, known_hosts)
    try:
        version = remote_edgecv_version(client, remote_python, timeout)
        if version != edgecv.__version__:
            log(f"note: the device has edgecv {version}, this machine {edgecv.__version__}")
        rc, out, err = run(client, remote_command(remote_python, "-c", MKDTEMP), timeout=min(60.0, timeout))
        if rc != 0:
            raise RemoteError(f"{spec}: cannot make a temporary folder: {err.strip()}")
        workdir = parse_workdir(out)
        try:
            return _bench_in(client, spec, workdir, artifact, data, labels, options, remote_python, log, timeout)
        finally:
            try:
                run(client, f"rm -rf -- {quote(workdir)}", timeout=min(120.0, timeout))
            except RemoteError as e:
                log(f"warning: could not remove {spec}:{workdir} ({e}); remove it by hand")
    finally:
        client.close()


def _bench_in(client, spec: HostSpec, workdir: PurePosixPath, artifact: Path, data: Optional[Path],
              labels: Optional[Path], options: dict, python: str, log, timeout: float = DEFAULT_TIMEOUT) -> dict:
    sftp = client.open_sftp()
    sftp.get_channel().settimeout(timeout)  # a hung device fails the copy instead of blocking forever
    try:
        sent = put(sftp, artifact, workdir / artifact.name)
        for name in SIDECARS:
            if (artifact.parent / name).is_file() and not (labels and name == "labels.txt"):
                put(sftp, artifact.parent / name, workdir / name, upload=sent)
        args = [str(workdir / artifact.name)]
        if labels:
            put(sftp, labels, workdir / "labels.txt", upload=sent)
            args += ["--labels", str(workdir / "labels.txt")]
        if data is not None:
            put(sftp, data, workdir / "data", images_only=True, upload=sent)
            args += ["--data", str(workdir / "data")]
        else:
            args += ["--random"]
        list_skipped(sent, log)
        log(f"copied {sent.files} file(s), {sent.bytes / 1e6:.2f} MB to {spec}:{workdir}; running edgecv bench there")
        result_path = workdir / "result.json"
        command = remote_command(python, "-m", "edgecv.cli.main", "bench", *args, *bench_args(options), "--json",
                                 str(result_path))
        rc, out, err = run(client, command, timeout=timeout)
        if rc != 0:
            tail = "\n".join((err or out).strip().splitlines()[-8:])
            raise RemoteError(f"`edgecv bench` failed on {spec} (exit {rc}):\n{tail}")
        with sftp.open(str(result_path)) as f:
            result = _device_result(f.read(MAX_RESULT_BYTES + 1), spec)
    except (TimeoutError, EOFError) as e:  # socket.timeout is TimeoutError: the device stopped answering
        raise RemoteError(f"{spec} stopped answering while files were copied ({type(e).__name__}: {e}); check the "
                          "device and its network, or give it longer with --remote-timeout") from None
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
