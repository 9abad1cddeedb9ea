"""Shared fixtures: tiny synthetic data and a tiny trained model, built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from synthetic import make_image_folder, write_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file in ../shared, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (real assets beside the repository); not present here")
    return p


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "images", classes=3, per_class=20)


@pytest.fixture(scope="session")
def tiny_recipe_path(tmp_path_factory, tiny_data) -> Path:
    return write_recipe(tmp_path_factory.mktemp("recipe") / "edgecv.yaml", tiny_data)


@pytest.fixture(scope="session")
def tiny_trained(tiny_recipe_path):
    """(recipe, index, TrainResult) for TinyCNN on the synthetic data: trained once per session."""
    from edgecv.config import load_recipe
    from edgecv.data.index import build_index
    from edgecv.train.trainer import train

    recipe = load_recipe(tiny_recipe_path)
    index = build_index(recipe.data, recipe.resolve)
    return recipe, index, train(recipe, index)


@pytest.fixture(scope="session")
def tiny_model(tiny_trained):
    """The trained TaskModel (32x32 TinyCNN, 3 classes)."""
    return tiny_trained[2].model


@pytest.fixture(scope="session")
def tiny_val(tiny_trained):
    """(uint8 images, labels) of the validation split."""
    import numpy as np

    from edgecv.data.images import load_batch

    recipe, index, _ = tiny_trained
    images = load_batch([s.path for s in index.val], recipe.input.size, recipe.input.resize)
    return images, np.array([s.label for s in index.val])


@pytest.fixture(scope="session")
def tiny_calibration(tiny_trained):
    """A calibration generator factory over the training split (what exporters receive)."""
    from edgecv.data.calibration import select_calibration
    from edgecv.data.images import load_batch

    recipe, index, _ = tiny_trained
    calib = select_calibration(index, recipe.calibration, recipe.resolve)

    def batches():
        for s in calib.samples:
            yield load_batch([s.path], recipe.input.size, recipe.input.resize)

    return batches, calib
