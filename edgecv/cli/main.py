"""The `edgecv` command line."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from edgecv.cli.app import _build_log_of, app, build_log, capture_native, console, finish, out, print_plan
from edgecv.cli.app import fail as _fail
from edgecv.cli.app import parse_input_size as _input_size
from edgecv.cli.app import warn as _warn
from edgecv.cli.conventions import emit_json
from edgecv.errors import EdgecvError, InputError
from edgecv.terminal import private_log


@app.command()
def build(
    target: List[str] = typer.Option([], "--target", "-t", help="target name (targets/NAME.yaml) or path; repeatable"),
    all_targets: bool = typer.Option(False, "--all", help="build every known target"),
    recipe: Path = typer.Option(Path("edgecv.yaml"), "--recipe", "-r", help="project recipe"),
    out_dir: Path = typer.Option(Path("build"), "--out", "-o", help="build folder: <out>/<target>/"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe key: --set train.warmup.epochs=1"),
    no_gates: bool = typer.Option(False, "--no-gates", help="report gates without failing the build"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the build graph (each step: what it reads, cached or to run) and stop"),
    force: List[str] = typer.Option([], "--force", help="re-run a stage even if cached: index, train, reference, "
                                    "passes, export, validate or all; repeatable (train also re-makes everything "
                                    "made from the model)"),
    regen_reference: bool = typer.Option(False, "--regen-reference", help="recompute the float reference outputs"),
    wait: float = typer.Option(0.0, "--wait", help="seconds to wait for another build of the same --out to finish"),
    device: Optional[str] = typer.Option(None, "--device", help="then benchmark the TFLite/ONNX artifacts on this "
                                         "device over SSH (user@host[:port]) and merge the results"),
    remote_python: str = typer.Option("python3", "--remote-python", help="--device: the device's Python, with edgecv"),
    identity: Optional[Path] = typer.Option(None, "--identity", help="--device: SSH private key (default: ssh-agent)"),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="--device: extra known_hosts file"),
    wide: bool = typer.Option(False, "--wide", help="every report column in the terminal table, not the 80-column set"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also show TensorFlow's and the converters' own "
                                 "output (always kept in <out>/build.log and <out>/<target>/build.log)"),
):
    """Train the recipe's model and build, validate and gate every artifact of the target(s)."""
    from edgecv import api
    from edgecv.extras import require_extra

    try:
        if not dry_run:
            require_extra("build", "`edgecv build` (training and conversion)")
        if device:  # a wrong --device is bad input now, not after the whole build
            from edgecv.remote.ssh import HostSpec

            HostSpec.parse(device)
        with build_log(out_dir, verbose, dry_run, wait) as (native, lock):
            if not (all_targets or target):
                raise InputError("name at least one --target (see `edgecv targets`) or pass --all")
            b = api.prepare_build(recipe, target, out=out_dir, overrides=set_, all_targets=all_targets,
                                  gates=not no_gates, force=force, regen_reference=regen_reference, console=console,
                                  native=native)
            if dry_run:
                print_plan(b.plan(every_step=True))
                raise typer.Exit(0)
            result = api.run(b, wait, check=False, held=lock)
    except EdgecvError as e:
        _fail(e, log=_build_log_of(e, out_dir))
    code = finish(result, wide)
    if device:
        from edgecv.remote.build import bench_build_on_device

        try:
            failures = bench_build_on_device(b, result, device, remote_python, identity, known_hosts, console.print)
        except EdgecvError as e:
            _fail(e)
        for f in failures:
            console.print(f"[red]gate failed on the device[/] {escape(f)}")
        code = max(code, 1 if failures else 0)
    raise typer.Exit(code)


@app.command()
def clean(
    out_dir: Path = typer.Option(Path("build"), "--out", "-o", help="build folder whose cache to prune"),
    all_: bool = typer.Option(False, "--all", help="delete the whole cache, not only entries no build uses"),
):
    """Prune the stage cache: entries no current target's manifest refers to (or everything with --all)."""
    from edgecv.orchestrator.clean import prune_cache

    try:
        removed, kept, freed = prune_cache(out_dir, everything=all_)
    except EdgecvError as e:
        _fail(e)
    out.print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'} ({freed / 1e6:.1f} MB), kept {kept}")


# validate and bench: how to read a third party's file (no preprocessing.json beside it)
THIRD_PARTY_TASK = typer.Option(None, "--task", help="a third party's file (no preprocessing.json): its task "
                                "(`edgecv tasks`), e.g. generic for its outputs' shapes only, detection for the four "
                                "post-process outputs")
INPUT_RANGE = typer.Option(None, "--input-range", metavar="LO,HI", help="a third party's float input: the values "
                           "pixels 0 and 255 become, e.g. --input-range=-1,1 (default 0,255; an int8/uint8 input uses "
                           "its own quantization)")


@app.command()
def validate(
    artifact: Path = typer.Argument(..., help=".tflite file or SavedModel folder"),
    data: Path = typer.Option(..., "--data", help="folder of images, of class sub-folders for accuracy, or images/ + labels/ for segmentation mIoU"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="labels file, one per line (default: labels.txt beside the artifact)"),
    label_offset: Optional[int] = typer.Option(None, "--label-offset", help="output i is label line i+N (default 0; "
                                               "1 for the 1001-line ImageNet labels file)"),
    resize: Optional[str] = typer.Option(None, "--resize", help="how images meet the input size: center_crop | "
                                         "resize | pad (default: center_crop, or what the artifact's keypoints.json "
                                         "names; preprocessing.json says it for edgecv's artifacts)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads the runtime may use (default: its own)"),
    top_k: int = typer.Option(3, "--top-k", help="predictions shown per image with --per-image"),
    per_image: bool = typer.Option(False, "--per-image", help="also print every image's top-k predictions"),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the result as JSON to FILE, "
                                            "every image included (`-`: to stdout)"),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="keypoint artifacts: a CSV "
                                               "`image,x0,y0,...` in pixels or COCO keypoints JSON for --data"),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW for a model that accepts any size "
                                             "(default: preprocessing.json beside it)"),
    task: Optional[str] = THIRD_PARTY_TASK,
    input_range: Optional[str] = INPUT_RANGE,
):
    """Evaluate an artifact on an image folder with its task's metrics: a classifier (third-party TFLite
    models included) on class sub-folders, a keypoint artifact with --annotations (NME, failure rate,
    error per keypoint), any task preprocessing.json names."""
    from edgecv import api
    from edgecv.files import ensure_writable
    from edgecv.validate.device import artifact_task

    try:
        if json_out and str(json_out) != "-":
            ensure_writable(json_out)
        with private_log("validate") as native_file, capture_native(native_file) as native:
            res = api.validate(artifact, data, labels=labels, label_offset=label_offset, resize=resize,
                               threads=threads, top_k=top_k, input_size=_input_size(input_size),
                               annotations=annotations, warn=_warn, native=native, task=task,
                               input_range=input_range)
        task = artifact_task(artifact, annotations, data, task)[0]
    except EdgecvError as e:
        _fail(e)
    if str(json_out) == "-":  # stdout holds the JSON alone
        emit_json(json_out, vars(res))
        return
    task.print_device_report(vars(res), artifact, data, out, console, {"per_image": per_image, "top_k": top_k})
    if json_out:
        emit_json(json_out, vars(res))


@app.command()
def bench(
    artifact: Optional[Path] = typer.Argument(None, help=".tflite, .onnx, SavedModel folder, ... (edgecv's or a "
                                              "third party's); with --serving: the files served (optional)"),
    data: Optional[Path] = typer.Option(None, "--data", help="images (class sub-folders also give accuracy; images/ + labels/ give mIoU)"),
    random_inputs: bool = typer.Option(False, "--random", help="random uint8 images at the artifact's input size"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads the runtime may use (default: its own)"),
    batch: List[int] = typer.Option([1], "--batch", help="batch size; repeatable"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="labels file, one per line, to score --data class "
                                          "sub-folders (default: labels.txt beside the artifact)"),
    resize: Optional[str] = typer.Option(None, "--resize", help="how --data images meet the input size: "
                                         "center_crop | resize | pad (default: center_crop; a keypoint artifact's "
                                         "keypoints.json names its own)"),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="keypoint artifacts: CSV or COCO "
                                               "keypoints for --data, gives NME"),
    int8_semantics: Optional[str] = typer.Option(None, "--int8-semantics", help="ONNX: qdq (default for Q/DQ "
                                                 "graphs: their own arithmetic) | s8s8 | u8u8 | native (onnxruntime's "
                                                 "fused kernels for this CPU: what an onnxruntime deployment runs)"),
    runs: int = typer.Option(50, "--runs", help="at least this many timed runs per batch size"),
    seconds: float = typer.Option(2.0, "--seconds", help="and at least this long"),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the result as JSON to FILE "
                                            "(`-`: to stdout); merge it with `edgecv report --merge`"),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW for a model that accepts any size "
                                             "(default: preprocessing.json beside it)"),
    task: Optional[str] = THIRD_PARTY_TASK,
    input_range: Optional[str] = INPUT_RANGE,
    host: Optional[str] = typer.Option(None, "--host", help="run it on this device over SSH: user@host[:port]; the "
                                       "result is merged into the report.json beside the artifact"),
    remote_python: str = typer.Option("python3", "--remote-python", help="--host: the device's Python, with edgecv"),
    identity: Optional[Path] = typer.Option(None, "--identity", help="--host: SSH private key (default: ssh-agent, ~/.ssh)"),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="--host: known_hosts file read besides "
                                               "~/.ssh/known_hosts (unknown hosts are refused)"),
    remote_timeout: float = typer.Option(600.0, "--remote-timeout", help="--host: seconds one command on the device "
                                         "may take before it counts as hung (exit 5)"),
    serving: Optional[str] = typer.Option(None, "--serving", help="load-test a running TF Serving REST endpoint "
                                          "(http://HOST:8501/v1/models/NAME; edgecv serve's or TF Serving's) at "
                                          "each --concurrency, --runs requests and --seconds at most per level"),
    concurrency: List[int] = typer.Option([1, 4, 16], "--concurrency", help="--serving: clients at once; repeatable"),
):
    """Measure an artifact on this machine (or on --host over SSH, or a server with --serving): latency percentiles, memory, load time, accuracy with --data."""
    if serving:
        from edgecv.cli.serve import bench_serving

        try:
            raise typer.Exit(bench_serving(serving, artifact, data, concurrency, runs, seconds, json_out, out))
        except EdgecvError as e:
            _fail(e)
    if artifact is None:
        _fail(InputError("name the ARTIFACT to measure (or --serving URL for a running server)"))
    from edgecv import api
    from edgecv.files import ensure_writable
    from edgecv.report.outputs import FPS_MEANING, fps
    from edgecv.runtimes.latency import NOISY_P99_OVER_P50, noisy

    try:
        if json_out and str(json_out) != "-":  # before measuring: results must not be lost after the table
            ensure_writable(json_out)
        with private_log("bench") as native_file, capture_native(native_file) as native:  # the runtime's start-up lines
            res = api.bench(artifact, data, random=random_inputs, threads=threads, batch=batch, labels=labels,
                            resize=resize, annotations=annotations, int8_semantics=int8_semantics, runs=runs,
                            seconds=seconds, input_size=_input_size(input_size), host=host,
                            remote_python=remote_python, identity=identity, known_hosts=known_hosts, warn=_warn,
                            log=console.print, native=native, remote_timeout=remote_timeout, task=task,
                            input_range=input_range).to_json()
    except EdgecvError as e:
        _fail(e)
    show = console if str(json_out) == "-" else out  # `--json -`: stdout holds the JSON alone
    where = f"{res['remote']['host']}: " if res.get("remote") else ""
    t = Table(title=f"{artifact.name} on {where}{res['device']['cpu']} ({res['device']['cpu_count']} cores), "
                    f"{res['runtime'].get('library')}, threads {threads or 'default'}; times in ms",
              box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col in ("batch", "warm-up", "runs", "1st run", "p50", "p90", "p99", "mean ± std", "FPS"):
        t.add_column(col, justify="right", no_wrap=True)
    for lat in res["latency_by_batch"]:
        first = "-" if lat.get("first_ms") is None else f"{lat['first_ms']:.3f}"
        t.add_row(str(lat["batch"]), str(lat["warmup"]), str(lat["runs"]), first, f"{lat['p50_ms']:.3f}",
                  f"{lat['p90_ms']:.3f}", f"{lat['p99_ms']:.3f}", f"{lat['mean_ms']:.3f} ± {lat.get('std_ms', 0):.3f}",
                  f"{fps(lat):.1f}")
    show.print(t)
    console.print(f"[dim]1st run: the first call of the timed loop at that batch size; {FPS_MEANING}[/]")
    for lat in res["latency_by_batch"]:
        if noisy(lat["p50_ms"], lat["p99_ms"]):
            console.print(f"[yellow]warning:[/] batch {lat['batch']}: p99 {lat['p99_ms']:.3f} ms is more than "
                          f"{NOISY_P99_OVER_P50:g}x p50 {lat['p50_ms']:.3f} ms: the runs are noisy (other load, "
                          "throttling); close other programs or raise --runs/--seconds before trusting these numbers")
    mem = res["memory"]
    first = res.get("first_inference_ms")
    show.print(f"load {res['load_seconds'] * 1000:.1f} ms; first inference after loading (one image) "
              + ("-" if first is None else f"{first:.3f} ms") + f"; size {res['artifact']['size_bytes'] / 1e6:.3f} MB "
              f"(gzip {res['artifact']['gzip_bytes'] / 1e6:.3f} MB); peak RSS "
              + ("-" if mem["peak_rss_mb"] is None else f"{mem['peak_rss_mb']:.1f} MB"))
    if res.get("session_options"):
        from edgecv.report.identity import session_text

        show.print(f"onnxruntime int8 arithmetic {session_text(res['session_options'])}; sha256 {res['artifact']['sha256']}")
    if res["accuracy"]:
        top5 = "" if res["accuracy"]["top5"] is None else f", top-5 {res['accuracy']['top5']:.2f}%"
        show.print(f"accuracy top-1 {res['accuracy']['top1']:.2f}%{top5} on {res['accuracy']['images']} images")
    elif res["metrics"]:
        from edgecv.validate.device import artifact_task, metrics_text

        show.print(metrics_text(artifact_task(artifact, annotations, data, task)[0], res["metrics"]))
    if res.get("outputs"):
        show.print("outputs on --data: " + ", ".join(f"{n} {v}" for n, v in res["outputs"].items()))
    if json_out:
        emit_json(json_out, res)
        if str(json_out) != "-":
            out.print(f"wrote {json_out}")
    if host and (artifact.parent / "report.json").is_file():
        from edgecv.report.merge import merge_results

        try:
            failures = merge_results(artifact.parent / "report.json", [res])
        except EdgecvError as e:
            _fail(e)
        out.print(f"merged into {artifact.parent / 'report.json'} (and its report.html)")
        for f in failures:
            console.print(f"[red]gate failed on the device[/] {escape(f)}")
        raise typer.Exit(1 if failures else 0)


@app.command()
def report(
    report_json: Path = typer.Argument(..., help="a target's report.json from `edgecv build` (or its folder)"),
    merge: List[Path] = typer.Option([], "--merge", help="`edgecv bench --json` result from a device; repeatable"),
    wide: bool = typer.Option(False, "--wide", help="without --merge: every report column, not the 80-column set"),
):
    """Show a build's report table, or fold device benchmark results into it (--merge) and re-check its
    gates with the device numbers."""
    from edgecv.report.merge import merge_files

    if report_json.is_dir():  # a target folder: its report
        report_json = report_json / "report.json"
    try:
        if not merge:
            from edgecv.report.table import print_summary
            from edgecv.report.regression import read_report

            print_summary(read_report(report_json, "report"), out, wide=wide, notes=console)
            raise typer.Exit(0)
        failures = merge_files(report_json, merge)
    except EdgecvError as e:
        _fail(e)
    from edgecv.report.outputs import device_lines
    from edgecv.results import load_report

    for line in device_lines(load_report(json.loads(report_json.read_text()))):
        out.print(line)
    for f in failures:
        console.print(f"[red]gate failed[/] {f}")
    out.print(f"merged {len(merge)} result(s) into {report_json} (and its junit.xml, summary.md, report.html)")
    raise typer.Exit(1 if failures else 0)


@app.command()
def gate(
    report_json: Path = typer.Option(..., "--report", help="the new report.json"),
    baseline: Path = typer.Option(..., "--baseline", help="the accepted report.json"),
    max_accuracy_drop: float = typer.Option(0.5, "--max-accuracy-drop", help="points"),
    max_latency_growth: float = typer.Option(10.0, "--max-latency-growth", help="percent"),
    max_size_growth: float = typer.Option(5.0, "--max-size-growth", help="percent"),
    latency_stat: str = typer.Option("p50_ms", "--latency-stat", help="p50_ms | p90_ms | p99_ms | mean_ms"),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="accept the report as the new baseline"),
    judge: str = typer.Option("value", "--judge", help="value: the measured change; significant: fail only when "
                              "the paired interval of the worsening lies wholly above the tolerance; confident: "
                              "pass only when it lies wholly within it (both need per-image scores of the same "
                              "images in both reports, else the value is judged and the finding says why)"),
    confidence: float = typer.Option(0.95, "--confidence", help="level of the paired intervals"),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="a metric, latency or size missing or not a "
                                       "number in either report is listed as not compared instead of failing"),
):
    """Regression gate for CI: fail (exit 1) when accuracy, latency or size regressed past the tolerances, or
    could not be compared (missing in either report; see --allow-missing)."""
    from edgecv.build_folder import check_before_use
    from edgecv.files import atomic_write_bytes
    from edgecv.report.regression import Tolerances, compare_reports, read_report

    if judge not in ("value", "significant", "confident") or not 0.5 < confidence < 1:
        _fail(InputError(f"--judge {judge} --confidence {confidence}: judge is value, significant or confident; "
                         "confidence is between 0.5 and 1 (e.g. 0.95)"))
    check_before_use(report_json, _warn)
    current = read_report(report_json, "--report")
    if update_baseline:
        atomic_write_bytes(baseline, report_json.read_bytes())
        out.print(f"baseline {baseline} updated from {report_json}")
        raise typer.Exit(0)
    if not baseline.exists():
        _fail(InputError(f"--baseline {baseline}: not found; accept a first one with --update-baseline"))
    tol = Tolerances(max_accuracy_drop, max_latency_growth, max_size_growth, latency_stat, judge=judge,
                     confidence=confidence, allow_missing=allow_missing)
    findings = compare_reports(read_report(baseline, "--baseline", like=current), current, tol)
    for f in findings:
        mark = "[red]FAIL[/] " if not f.passed else "[green]ok  [/] " if f.compared else "[yellow]skip[/] "
        out.print(mark + escape(f.message))
    failed = [f for f in findings if not f.passed]
    skipped = [f for f in findings if f.passed and not f.compared]
    out.print(f"{len(findings) - len(failed) - len(skipped)} passed, {len(failed)} failed"
              + (f", {len(skipped)} not compared" if skipped else ""))
    raise typer.Exit(1 if failed else 0)


@app.command()
def diagnose(
    artifact: Path = typer.Argument(..., help="an int8 .tflite inside an edgecv build folder"),
    top: int = typer.Option(15, "--top", help="show the N worst layers"),
    samples: int = typer.Option(32, "--samples", help="calibration images to measure the error on"),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write every layer's error as JSON "
                                            "to FILE (`-`: to stdout)"),
):
    """Rank an int8 TFLite artifact's layers by quantization error, worst first (why it misses a gate)."""
    from edgecv.extras import require_extra
    from edgecv.orchestrator.diagnose import diagnose_artifact

    try:
        require_extra("build", "`edgecv diagnose` (TFLite's quantization debugger)")
        with private_log("diagnose") as native_file, capture_native(native_file):
            d = diagnose_artifact(artifact, samples)
    except EdgecvError as e:
        _fail(e)
    if str(json_out) == "-":  # stdout holds the JSON alone
        emit_json(json_out, d.to_json())
        return
    out.print(f"{artifact.name} matches the build's manifest (sha256 {d.artifact_sha256[:12]}...): its float model "
              f"(key {d.made_from[:12]}) re-quantized with the build's calibration images, layer by layer")
    t = Table(title=f"{artifact.name}: per-layer int8 error on {samples} calibration images (worst first)")
    for col in ("#", "op", "Keras layers", "rmse / scale", "rmse", "max abs err"):
        t.add_column(col, justify="right" if col in ("#", "rmse / scale", "rmse", "max abs err") else "left")
    for i, e in enumerate(d.worst(top), 1):
        t.add_row(str(i), e.op, ", ".join(e.layers[:3]), f"{e.rmse_over_scale:.3f}", f"{e.rmse:.4g}", f"{e.max_abs_error:.4g}")
    out.print(t)
    out.print("rmse / scale: the op's own output error in quantization steps, given the same quantized input. "
              "Keep the worst layers in float with options: {accuracy_aware: {...}} on the artifact.")
    if json_out:
        emit_json(json_out, d.to_json())


@app.command()
def targets(recipe_dir: Optional[Path] = typer.Option(None, "--recipe-dir", help="also list targets/ beside "
                                                      "this recipe folder (it overrides bundled ones)")):
    """List the known targets with a one-line description."""
    from edgecv.config import list_targets, load_target

    from edgecv.cli.listing import listing_console, print_listing

    rows = []
    for name, path in list_targets(recipe_dir):
        try:
            tg = load_target(str(path))
            rows.append([name, ", ".join(f"{a.name} ({a.format} {a.precision})" for a in tg.artifacts), tg.description])
        except EdgecvError as e:
            rows.append([name, "[red]invalid[/]", escape(str(e).splitlines()[0])])
    print_listing(listing_console(), ("target", "artifacts", "description"), rows, prose=(2,))


@app.command()
def formats():
    """List artifact formats with their precisions."""
    from edgecv.exporters import EXPORTER_MODULES, get_exporter
    from edgecv.exporters.base import FORMAT_ALIASES

    from edgecv.cli.listing import listing_console, print_listing

    rows = []
    for fmt in sorted(EXPORTER_MODULES):
        aliases = ", ".join(a for a, f in FORMAT_ALIASES.items() if f == fmt) or "-"
        try:
            e = get_exporter(fmt)
            rows.append([fmt, aliases, ", ".join(e.precisions), ", ".join(e.needs_calibration) or "-"])
        except ImportError as err:
            rows.append([fmt, aliases, f"[yellow]unavailable: {escape(str(err))}[/]", ""])
    print_listing(listing_console(), ("format", "also accepted as", "precisions", "needs calibration"), rows)


@app.command()
def tasks():
    """List the tasks a recipe can name, with their outputs, metrics and the gates they offer."""
    from edgecv.tasks import all_task_classes
    from edgecv.validate.gates import gate_descriptions

    from edgecv.cli.listing import listing_console, print_listing

    rows = []
    for cls in all_task_classes():
        task = cls()
        outputs = ", ".join(f"{o.name} {'×'.join(map(str, o.shape))}" for o in task.output_spec({}))
        metrics = ", ".join(f"{m.name}{'↑' if m.higher_is_better else '↓'}" for m in cls.metrics + cls.agreement_metrics)
        rows.append([cls.name, escape(outputs), metrics or "-", cls.description])
    console_out = listing_console()
    print_listing(console_out, ("task", "outputs", "metrics (↑ higher, ↓ lower is better)", "description"), rows,
                  prose=(3,))
    print_listing(console_out, ("gate", "applies to", "meaning"),
                  [[escape(c) for c in row] for row in gate_descriptions(all_task_classes())],
                  title="gates (target files: gates: {NAME: LIMIT})", prose=(2,))


@app.command()
def backbones():
    """List the backbones a recipe can name, with their built-in normalization."""
    from edgecv.models.backbones import BACKBONES

    from edgecv.cli.listing import listing_console, print_listing

    rows = [[s.name, s.normalization, str(s.default_size), "yes" if s.takes_alpha else "-"] for s in BACKBONES.values()]
    print_listing(listing_console(), ("backbone", "normalization", "default size", "alpha"), rows)


from edgecv.cli.engine import engine_app  # noqa: E402
from edgecv.cli.export import export_model  # noqa: E402
from edgecv.cli.passes import list_passes  # noqa: E402

app.add_typer(engine_app, name="engine")
app.command("export")(export_model)
app.command("passes")(list_passes)
from edgecv.cli.features import register as register_feature_commands  # noqa: E402

register_feature_commands(app)
from edgecv.cli.selection import select as select_backbone  # noqa: E402
from edgecv.cli.eval_images import eval_images  # noqa: E402

app.command("eval-images")(eval_images)

app.command("select")(select_backbone)
from edgecv.cli.serve import serve as serve_command  # noqa: E402

app.command("serve")(serve_command)
from edgecv.cli.conventions import group_commands  # noqa: E402

group_commands(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
