"""Images without labels (bring your own model): every image under a folder, class sub-folders or
not, split into a calibration pool (`train`) and the validation images, seeded. Artifacts are then
judged by agreement with the float model only."""

from __future__ import annotations

import random
from pathlib import Path

from edgecv.data.index import DataIndex, Sample, _check_readable, _image_files
from edgecv.errors import DataError
from edgecv.data.groups import group_of, split_by_group


def readable_images(root: Path) -> tuple[list[Path], list]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: fix `data` in the recipe (edgecv export: --data)")
    candidates, unusable = _image_files(root)
    ok, skipped = _check_readable(candidates)
    skipped = unusable + skipped
    if not ok:
        raise DataError(f"data folder {root} has no readable images (.jpg, .png, .bmp, ...)")
    return ok, skipped


def unlabelled_index(data_cfg, resolve, info: dict) -> DataIndex:
    """`root` split by val_fraction, or `train` (calibration images) and `val` as given."""
    if data_cfg.root is not None:
        paths, skipped = readable_images(resolve(data_cfg.root))
        paths = sorted(paths)
        if getattr(data_cfg, "group_by", None) is not None:
            root = resolve(data_cfg.root)
            train, val = split_by_group(paths, lambda p: group_of(p, root, data_cfg.group_by),
                                        data_cfg.val_fraction, data_cfg.seed)
            return DataIndex({**info, "labelled": False}, [Sample(str(p)) for p in train],
                             [Sample(str(p)) for p in val], skipped)
        random.Random(data_cfg.seed).shuffle(paths)
        n_val = max(1, round(len(paths) * data_cfg.val_fraction))
        if n_val >= len(paths):
            raise DataError(f"data folder {resolve(data_cfg.root)} has {len(paths)} image(s): at least 2 are needed "
                            "(calibration and validation images must differ)")
        train, val = paths[n_val:], paths[:n_val]
    else:
        train, skipped = readable_images(resolve(data_cfg.train))
        val, more = readable_images(resolve(data_cfg.val))
        skipped += more
        shared = {str(p.resolve()) for p in train} & {str(p.resolve()) for p in val}
        if shared:
            raise DataError(f"{len(shared)} image(s) are both calibration and validation images (e.g. "
                            f"{sorted(shared)[0]}): calibrating on the images that judge the artifact flatters it; "
                            "give a separate calibration folder, or none (a split of --data)")
    return DataIndex({**info, "labelled": False}, [Sample(str(p)) for p in train], [Sample(str(p)) for p in val],
                     skipped)
