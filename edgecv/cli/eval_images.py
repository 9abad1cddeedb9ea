"""`edgecv eval-images TARGET_DIR -o DIR`: the exact validation images a build judged its artifacts
on, copied into a folder `edgecv bench --data` reads (class sub-folders where the images had
them, file names kept, so a keypoint annotation file still names them). A device result measured
on that folder records the same image set as the build's report, so `edgecv report --merge`
judges its accuracy; on other images it merges the latency only and says why."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer
from rich.console import Console

from edgecv.errors import EdgecvError, InputError

console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def eval_images(
    target_dir: Path = typer.Argument(..., help="a target folder of a build (with report.json)"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="a new or empty folder for the images"),
):
    """Copy the build's validation images into a folder for `edgecv bench --data` on a device."""
    from edgecv.data.image_set import image_set_id
    from edgecv.files import read_json

    try:
        report = read_json(target_dir / "report.json", "TARGET_DIR")
        paths = (report.get("data") or {}).get("eval_images") if isinstance(report, dict) else None
        if not paths:
            raise InputError(f"{target_dir / 'report.json'} lists no validation images (data.eval_images)")
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise InputError(f"{len(missing)} of the {len(paths)} validation images are gone from this machine, e.g. "
                             f"{missing[0]}: run this where the build ran")
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(f"--out {out_dir} is not empty: give a new folder (bench reads every image in it)")
        classes = set((report.get("task_info") or {}).get("class_names") or [])
        for p in map(Path, paths):
            sub = out_dir / p.parent.name if p.parent.name in classes else out_dir
            sub.mkdir(parents=True, exist_ok=True)
            if (sub / p.name).exists():
                raise InputError(f"two validation images are named {p.name}: they cannot share {sub}")
            shutil.copyfile(p, sub / p.name)
    except EdgecvError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(e.exit_code)
    ident = image_set_id(paths)
    console.print(f"{len(paths)} validation images -> {out_dir} (image set {ident['sha256'][:12]}); on the device: "
                  f"edgecv bench ARTIFACT --data {out_dir.name} --json result.json, then edgecv report "
                  f"{target_dir / 'report.json'} --merge result.json")
