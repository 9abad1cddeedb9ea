"""`edgecv export MODEL -t TARGET ...` or `--format tflite --int8`: bring your own model, no recipe file.

The options are written into a recipe in memory (`model: {path: MODEL}`, no training) and built by
the same orchestrator as `edgecv build`: same target folders, reports, gates and cache. `--format`
stands for a one-artifact target made in memory (`edgecv.api.format_target`).
"""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

TASK_CHOICES = "classification | detection | keypoints | embedding | generic"


def export_model(
    model: Path = typer.Argument(..., help="your trained model: a .keras file, a Keras .h5 or a SavedModel folder"),
    target: List[str] = typer.Option([], "--target", "-t", help="target name (targets/NAME.yaml) or path; "
                                     "repeatable; or, with no target file, --format"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", metavar="FORMAT",
                                      help="no target file: build one artifact of this format (tflite | onnx | "
                                      "coreml | savedmodel | tensorrt) into <out>/FORMAT-PRECISION/"),
    int8: bool = typer.Option(False, "--int8", help="--format: full-integer int8, calibrated on --data"),
    fp16: bool = typer.Option(False, "--fp16", help="--format: float16 weights"),
    data: Path = typer.Option(..., "--data", help="images to calibrate and validate on; class sub-folders named "
                              "after the model's labels give accuracy, any other images agreement with the float model"),
    task: str = typer.Option("classification", "--task", help=f"{TASK_CHOICES} (generic: any named outputs, "
                             "judged per output against the float model)"),
    preprocess: Optional[str] = typer.Option(None, "--preprocess", help="the model's input normalization: a "
                                             "keras-applications family (mobilenet_v2, resnet50, efficientnet, ...), "
                                             "tf | torch | caffe | none (default: none when the model's first layer is Rescaling or "
                                             "Normalization); explicit values: --set (model.preprocess.mean, .std)"),
    architecture: Optional[str] = typer.Option(None, "--architecture", help="for a weights-only h5 (keras-applications "
                                               "files): its keras.applications model, e.g. MobileNetV2; its family's "
                                               "preprocessing is then the default"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="class names, one per line, in the order of the "
                                          "model's scores"),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="boxes of the --data images (a folder "
                                               "of VOC .xml or YOLO .txt files, a COCO .json) for a detector"),
    anchors: Optional[Path] = typer.Option(None, "--anchors", help="a detector's anchors: .npy of [L, 4] (yc, xc, "
                                           "h, w) in [0, 1] of the input, in the order of its box encodings"),
    box_scales: Optional[str] = typer.Option(None, "--box-scales", help="y,x,h,w scales the detector's box "
                                             "encodings are divided by (default 10,10,5,5)"),
    label_offset: Optional[int] = typer.Option(None, "--label-offset", help="output i is labels line i+N (default: "
                                               "auto, 1 for a file with one extra leading `background` line)"),
    calibration_data: Optional[Path] = typer.Option(None, "--calibration-data", help="images to calibrate int8 "
                                                    "on; then every --data image validates (default: a split of --data)"),
    input_size: Optional[Tuple[int, int]] = typer.Option(None, "--input-size", help="H W: the size to build for, for "
                                                         "a model whose input size is dynamic"),
    resize: str = typer.Option("center_crop", "--resize", help="center_crop | resize | pad"),
    name: Optional[str] = typer.Option(None, "--name", help="artifact name prefix (default: the model file's name)"),
    custom_objects: Optional[str] = typer.Option(None, "--custom-objects", help="module (package.module) defining "
                                                 "the model's custom layers: its `custom_objects` dict or its classes"),
    unsafe_deserialization: bool = typer.Option(False, "--unsafe-deserialization", help="load Lambda layers: this "
                                                "RUNS PYTHON CODE STORED IN THE MODEL FILE; only for files you trust"),
    out_dir: Path = typer.Option(Path("build"), "--out", "-o", help="build folder: <out>/<target>/"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe key: --set calibration.size=100"),
    no_gates: bool = typer.Option(False, "--no-gates", help="report gates without failing"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the build graph and stop"),
    force: List[str] = typer.Option([], "--force", help="re-run a stage even if cached (index, train, reference, "
                                    "passes, export, validate, all)"),
    wide: bool = typer.Option(False, "--wide", help="every report column in the terminal table, not the 80-column set"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also show TensorFlow's and the converters' own "
                                 "output (always kept in <out>/build.log and <out>/<target>/build.log)"),
):
    """Export, validate and gate a model you trained elsewhere for the target(s), or as one --format with no
    target file; no training."""
    from edgecv import api
    from edgecv.cli.app import _build_log_of, build_log, console, finish, print_plan
    from edgecv.cli.app import fail as _fail
    from edgecv.errors import EdgecvError, InputError

    try:
        if int8 and fp16:
            raise InputError("--int8 or --fp16, not both")
        with build_log(out_dir, verbose, dry_run) as (native, lock):
            b = api.prepare_export(model, target, data=data, format=fmt,
                                   precision="int8" if int8 else "fp16" if fp16 else "fp32", task=task,
                                   preprocess=preprocess, architecture=architecture, labels=labels,
                                   label_offset=label_offset, calibration_data=calibration_data,
                                   input_size=input_size, resize=resize, name=name, custom_objects=custom_objects,
                                   unsafe_deserialization=unsafe_deserialization, annotations=annotations,
                                   anchors=anchors, box_scales=box_scales, out=out_dir, overrides=set_,
                                   gates=not no_gates, force=force, console=console, native=native)
            if dry_run:
                print_plan(b.plan(every_step=True))
                raise typer.Exit(0)
            result = api.run(b, check=False, held=lock)
    except EdgecvError as e:
        _fail(e, log=_build_log_of(e, out_dir))
    raise typer.Exit(finish(result, wide))
