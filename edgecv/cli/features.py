"""`edgecv embed | index | search | heads | outliers`: embeddings outside a build.

No TensorFlow is imported unless the model given is a Keras one: `embed` and `search` run with any
artifact edgecv can run (a Raspberry Pi with ai-edge-litert, numpy and h5py is enough).
Exit codes: 0 ok, 2 bad input (missing file, wrong model, incomplete feature file).
"""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgecv.errors import DataError, EdgecvError
from edgecv.cli.conventions import emit_json, native_log, native_to_log

console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fail(e: EdgecvError) -> None:
    console.print(f"[red]error:[/] {e}")
    raise typer.Exit(e.exit_code)


def embed(
    model: Path = typer.Argument(..., help="artifact (.tflite, .onnx, SavedModel ...) or Keras model folder/file"),
    data: Path = typer.Option(..., "--data", help="image folder (class sub-folders give labels)"),
    out_path: Path = typer.Option(Path("features.h5"), "--out", "-o", help="HDF5 feature file"),
    chunk: int = typer.Option(64, "--chunk", help="images per chunk: the unit written and resumed"),
    resize: Optional[str] = typer.Option(None, "--resize",
                                         help="center_crop | resize | pad (default: the artifact's preprocessing.json)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads the runtime may use (default: its own)"),
    restart: bool = typer.Option(False, "--restart", help="overwrite an existing file instead of resuming it"),
    layer: Optional[str] = typer.Option(None, "--layer", help="Keras models: embed with this layer's output "
                                        "(default: the model's; a classifier's pooled features before its softmax)"),
    unsafe: bool = typer.Option(False, "--unsafe-deserialization", help="a Keras model: load Lambda layers (this "
                                "runs code stored in the model file: only for files you trust)"),
):
    """Embed every image under DATA into an HDF5 file; a killed run resumes where it stopped."""
    from edgecv.features.embedder import load_embedder
    from edgecv.features.extract import embed_folder

    try:
        with native_to_log(native_log("embed"), console, out):
            embedder = load_embedder(model, resize, threads, unsafe=unsafe, layer=layer)
            if embedder.layer:
                console.print(f"embedding with layer {embedder.layer} of {model.name} (the features its classifier "
                              "reads)" if layer is None else f"embedding with layer {embedder.layer} of {model.name}")
            try:
                summary = embed_folder(embedder, data, out_path, chunk, restart, console)
            finally:
                embedder.close()
    except EdgecvError as e:
        _fail(e)
    resumed = summary["resumed_from_chunk"]
    console.print(f"{summary['images']} images, {summary['embedded_now']} embedded now"
                  + (f" (resumed at chunk {resumed + 1} of {summary['chunks']})" if resumed else "")
                  + f", {len(summary['skipped'])} skipped -> {out_path}")
    for path, reason in summary["skipped"]:
        console.print(f"  skipped {path}: {reason}")


def index(
    features: Path = typer.Argument(..., help="features.h5 from `edgecv embed`"),
    out_dir: Path = typer.Option(Path("gallery"), "--out", "-o", help="gallery folder"),
):
    """Make a search gallery (exact cosine search) from a feature file."""
    from edgecv.features.gallery import build_gallery

    try:
        g = build_gallery(features, out_dir)
    except EdgecvError as e:
        _fail(e)
    console.print(f"gallery of {len(g.paths)} images, {g.embeddings.shape[1]} dimensions -> {out_dir}")


def search(
    gallery: Path = typer.Argument(..., help="gallery folder from `edgecv index`"),
    images: List[Path] = typer.Argument(..., help="query images"),
    k: int = typer.Option(5, "-k", help="neighbours per query"),
    model: Optional[Path] = typer.Option(None, "--model", help="model to embed the queries (default: the gallery's)"),
    as_json: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the neighbours as JSON to "
                                           "FILE (`-`: to stdout, instead of the tables)"),
):
    """The k most similar gallery images of each query image, with cosine scores."""
    from edgecv.data.images import ImageDecodeError, load_image
    from edgecv.features.embedder import load_embedder
    from edgecv.features.gallery import load_gallery

    try:
        with native_to_log(native_log("search"), console, out):
            g = load_gallery(gallery)
            embedder = load_embedder(model or Path(g.model_path), g.resize)
            if embedder.sha256 != g.model_sha256:
                console.print("[yellow]warning:[/] the query model is not the one the gallery was embedded with "
                              "(sha256 differs): scores compare embeddings of two models")
            pixels = []
            for p in images:
                try:
                    pixels.append(load_image(p, embedder.input_size, embedder.resize))
                except (ImageDecodeError, FileNotFoundError) as e:
                    raise DataError(f"query {p}: cannot read it ({e})") from None
            import numpy as np

            idx, sims = g.search(embedder.embed(np.stack(pixels)), k)
            embedder.close()
    except EdgecvError as e:
        _fail(e)
    results = [{"query": str(q), "neighbours": [{"path": g.paths[j], "label": g.labels[j], "cosine": float(s)}
                                                for j, s in zip(row, srow)]}
               for q, row, srow in zip(images, idx, sims)]
    if as_json:
        emit_json(as_json, results)
        if str(as_json) == "-":
            return
    for r in results:
        t = Table(title=r["query"])
        for col in ("rank", "cosine", "class", "image"):
            t.add_column(col)
        for i, n in enumerate(r["neighbours"], 1):
            t.add_row(str(i), f"{n['cosine']:.4f}", n["label"], n["path"])
        out.print(t)


def heads(
    features: Path = typer.Argument(..., help="features.h5 from `edgecv embed` of a class-folder dataset"),
    folds: int = typer.Option(5, "--folds", help="cross-validation folds"),
    epochs: int = typer.Option(5, "--epochs", help="passes of the streaming head over the file"),
    chunk_rows: Optional[int] = typer.Option(None, "--chunk-rows", help="rows per partial_fit (default: the file's chunk)"),
):
    """Cross-validated linear SVM, logistic regression and k-NN on the embeddings, plus a streaming
    SGD classifier trained chunk by chunk (partial_fit) for files larger than memory."""
    from edgecv.features.heads import cross_validated, streaming

    try:
        rows = cross_validated(features, folds)
        stream = streaming(features, epochs, chunk_rows)
    except EdgecvError as e:
        _fail(e)
    t = Table(title=f"classic heads on {features} ({rows[0]['images']} images)")
    for col in ("head", "accuracy %", "evaluation"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["head"], f"{r['accuracy']:.2f} ± {r['std']:.2f}", f"{r['folds']}-fold stratified CV")
    t.add_row(stream["head"], f"{stream['accuracy']:.2f}",
              f"{stream['held_out']} held-out images, {stream['epochs']} epochs, {stream['partial_fit_calls']} partial_fit calls")
    out.print(t)


def outliers(
    features: Path = typer.Argument(..., help="features.h5 from `edgecv embed` of a class-folder dataset"),
    iterations: int = typer.Option(3, "--iterations", help="centroid / drop rounds"),
    fraction: float = typer.Option(0.05, "--fraction", help="share of a class dropped per round"),
    top: int = typer.Option(0, "--top", help="list the N farthest per class instead of the filter's drops"),
    as_json: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the candidates as JSON to "
                                           "FILE (`-`: to stdout, instead of the table)"),
):
    """Per class, the images the iterated-centroid filter would drop, with their distances. Never
    deletes anything: the list is for a person to review."""
    from edgecv.features.outliers import find_outliers

    if not 0 < fraction < 1 or iterations < 1:
        _fail(DataError("--fraction must be between 0 and 1 and --iterations at least 1"))
    try:
        found = find_outliers(features, iterations, fraction, top)
    except EdgecvError as e:
        _fail(e)
    if as_json:
        emit_json(as_json, {c: [vars(x) for x in xs] for c, xs in found.items()})
        if str(as_json) == "-":
            return
    t = Table(title="outlier candidates (cosine distance to the class centroid; nothing deleted)")
    for col in ("class", "rank", "distance", "image"):
        t.add_column(col)
    for cls, cands in found.items():
        for c in cands:
            t.add_row(cls, str(c.rank), f"{c.distance:.4f}", c.path)
    out.print(t)


def register(app: typer.Typer) -> None:
    for command in (embed, index, search, heads, outliers):
        app.command()(command)
