"""`edgecv serve ARTIFACT|TARGET_FOLDER`: TF Serving's REST (and gRPC) API over any artifact; and
`edgecv bench --serving URL`, the load test of a running server (edgecv's or TF Serving)."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from edgecv.errors import EdgecvError, InputError

# as edgecv.cli.main's: wide enough for a log or CI when not a terminal
console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)


def serve(
    artifact: Path = typer.Argument(..., help="a target folder (build/cloud-tfserving), a SavedModel folder, "
                                    "a .tflite or an .onnx file"),
    port: int = typer.Option(8501, "--port", help="REST port (TF Serving's default 8501)"),
    grpc_port: int = typer.Option(8500, "--grpc-port", help="gRPC port (TF Serving's default 8500); 0: REST only"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="the name in the URL (default: "
                                             "models.config's, else the file name)"),
    max_batch_size: Optional[int] = typer.Option(None, "--max-batch-size", help="dynamic batching: most examples "
                                                 "per model call (default: batching_parameters.txt's, else 32)"),
    batch_timeout_micros: Optional[int] = typer.Option(None, "--batch-timeout-micros", help="dynamic batching: "
                                                       "longest wait for a batch to fill (default: the file's, else 2000)"),
    no_batching: bool = typer.Option(False, "--no-batching", help="every request its own model call"),
    workers: Optional[int] = typer.Option(None, "--workers", help="model calls at once (default: the file's "
                                          "num_batch_threads, else 2)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads per model call (default: the runtime's)"),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", help="largest request body (413 above)"),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="seconds for a request's headers (408 after)"),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="seconds for a request's body (408 after)"),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW for a model that accepts any size"),
):
    """Serve an artifact behind TF Serving's REST API (and gRPC PredictionService with the build extra) until
    SIGTERM or Ctrl-C."""
    from edgecv.cli.app import parse_input_size as _input_size
    from edgecv.extras import missing_modules
    from edgecv.serving.server import ServeOptions

    try:
        for p, name in ((port, "--port"), (grpc_port, "--grpc-port")):
            if not 0 <= p <= 65535 or (p == 0 and name == "--port"):
                raise InputError(f"{name} {p}: a port from 1 to 65535" + (" (0: no gRPC)" if name == "--grpc-port" else ""))
        if grpc_port and grpc_port == port:
            raise InputError(f"--port and --grpc-port are both {port}: give them different ports")
        for value, name in ((max_batch_size, "--max-batch-size"), (workers, "--workers")):
            if value is not None and value < 1:
                raise InputError(f"{name} {value}: at least 1")
        if max_body_mb <= 0 or header_timeout <= 0 or body_timeout <= 0:
            raise InputError("--max-body-mb, --header-timeout and --body-timeout are positive")
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise InputError("edgecv serve needs the `serve` extra: pip install 'edgecv[serve]'") from None
        if grpc_port and (missing_modules("build") or not _has("tensorflow_serving")):
            console.print("[yellow]warning:[/] gRPC off: it needs tensorflow-serving-api and TensorFlow "
                          "(pip install 'edgecv[build,serve]'); serving REST only")
            grpc_port = 0
        from edgecv.serving.model import ServedModel, find_artifact
        from edgecv.serving.server import check_free

        path = find_artifact(artifact)
        check_free(host, port, "--port")
        if grpc_port:
            check_free(host, grpc_port, "--grpc-port (0: no gRPC)")
        batching = _batching_file(path)
        opts = ServeOptions(host=host, port=port, grpc_port=grpc_port, batching=not no_batching,
                            max_batch_size=max_batch_size or batching.get("max_batch_size", 32),
                            batch_timeout_micros=batch_timeout_micros if batch_timeout_micros is not None
                            else batching.get("batch_timeout_micros", 2000),
                            max_enqueued_batches=batching.get("max_enqueued_batches", 100),
                            workers=workers or batching.get("num_batch_threads", 2),
                            max_body_bytes=int(max_body_mb * 1024 * 1024), header_timeout=header_timeout,
                            body_timeout=body_timeout)
        model = ServedModel(path, model_name, workers=opts.workers, threads=threads, input_size=_input_size(input_size))
        console.print(f"serving [bold]{escape(model.name)}[/] version {model.version} ({model.format}, "
                      f"{model.library}) from {escape(str(model.path))}")
        console.print(f"  REST http://{host}:{port}/v1/models/{model.name}" +
                      (f"  gRPC {host}:{grpc_port}" if grpc_port else "  (no gRPC)"))
        console.print(f"  signatures {', '.join(model.signatures)}; batching "
                      + (f"up to {opts.max_batch_size} examples, {opts.batch_timeout_micros} µs" if opts.batching
                         else "off") + f"; {opts.workers} workers; metrics /monitoring/prometheus/metrics")
        from edgecv.serving.server import serve as run_server

        stopped_by = run_server(model, opts)
    except EdgecvError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(e.exit_code)
    if stopped_by is not None:
        console.print(f"stopped on {signal.Signals(stopped_by).name}: in-flight requests answered")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _batching_file(path: Path) -> dict:
    f = (path if path.is_dir() else path.parent) / "batching_parameters.txt"
    if not f.is_file():
        return {}
    from edgecv.serving.tfs_protos import read_batching

    return read_batching(f)


def bench_serving(url: str, artifact: Optional[Path], data: Optional[Path], concurrency: List[int], requests: int,
                  seconds: float, json_out: Optional[Path], out: Console) -> int:
    """`edgecv bench [ARTIFACT] --serving URL`: print the levels; merge into the report beside
    ARTIFACT (its target folder's report.json) when there is one. Returns the exit code."""
    from rich import box
    from rich.table import Table

    from edgecv.cli.conventions import emit_json
    from edgecv.files import ensure_writable
    from edgecv.serving.loadtest import bench_serving as run

    if not concurrency or min(concurrency) < 1 or requests < 1 or seconds <= 0:
        raise InputError("--concurrency values, --runs and --seconds are positive")
    to_stdout = str(json_out) == "-"  # `--json -`: stdout holds the JSON alone
    if json_out and not to_stdout:
        ensure_writable(json_out)
    if to_stdout:
        out = console
    target_report = None
    if artifact is not None:
        from edgecv.serving.model import find_artifact

        artifact = find_artifact(artifact)
        for folder in (artifact.parent, artifact.parent.parent):
            if (folder / "report.json").is_file():
                target_report = folder / "report.json"
                break
    res = run(url, tuple(concurrency), requests, seconds, data, artifact, log=lambda m: console.print(f"[dim]{m}[/]"))
    t = Table(title=f"{url} ({res['serving']['signature']}, {res['serving']['request_bytes']} B per request); "
                    "times in ms", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col in ("concurrency", "requests", "failed", "p50", "p90", "p99", "mean", "req/s"):
        t.add_column(col, justify="right")
    for lv in res["latency_by_batch"]:
        t.add_row(str(lv["concurrency"]), str(lv["runs"]), str(lv["failed"]), f"{lv['p50_ms']:.2f}",
                  f"{lv['p90_ms']:.2f}", f"{lv['p99_ms']:.2f}", f"{lv['mean_ms']:.2f}", f"{lv['throughput_ips']:.1f}")
    out.print(t)
    failed = sum(lv["failed"] for lv in res["latency_by_batch"])
    for lv in res["latency_by_batch"]:
        for f in lv["failures"][:2]:
            console.print(f"[red]failed at concurrency {lv['concurrency']}:[/] {escape(f)}")
    if json_out:
        emit_json(json_out, res)
        if not to_stdout:
            out.print(f"wrote {json_out}")
    code = 1 if failed else 0
    if target_report is not None:
        from edgecv.report.merge import merge_results

        failures = merge_results(target_report, [res])
        out.print(f"merged into {target_report} (and its report.html) as a device row")
        for f in failures:
            console.print(f"[red]gate failed on the server[/] {escape(f)}")
        code = max(code, 1 if failures else 0)
    return code
