"""Learning-rate schedules per phase and which epoch's weights training keeps (tiny synthetic data)."""

from __future__ import annotations

import pytest

from edgecv.config import load_recipe
from edgecv.errors import ConfigError
from synthetic import write_recipe


def _train(tmp_path, tiny_data, **overrides):
    from edgecv.data.index import build_index
    from edgecv.train.trainer import train

    recipe = load_recipe(write_recipe(tmp_path / "edgecv.yaml", tiny_data, **overrides))
    index = build_index(recipe.data, recipe.resolve)
    return recipe, index, train(recipe, index)


def test_cosine_schedule_decays_the_phase_learning_rate_to_zero():
    from edgecv.config.recipe import PhaseConfig
    from edgecv.train.trainer import _optimizer

    opt = _optimizer(PhaseConfig(epochs=4, learning_rate=0.01, schedule="cosine"), steps_per_epoch=5)
    schedule = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(10)) == pytest.approx(0.005, rel=1e-3)  # half-way down the cosine
    assert float(schedule(20)) == pytest.approx(0.0, abs=1e-9)
    constant = _optimizer(PhaseConfig(epochs=4, learning_rate=0.01), steps_per_epoch=5)
    assert float(constant.learning_rate) == pytest.approx(0.01)


def test_keep_last_returns_the_final_weights_and_their_score(tmp_path, tiny_data):
    # SGD at a learning rate this high overshoots after epoch 2 (deterministic: seed 0), so the last
    # epoch is not the best one and keeping the best would show
    recipe, index, result = _train(tmp_path, tiny_data, train__keep="last", train__finetune__optimizer="sgd",
                                   train__finetune__learning_rate=0.5, train__finetune__epochs=4)
    last = result.history[-1]["val_accuracy"]
    assert max(h["val_accuracy"] for h in result.history) > last, "this test needs a run whose last epoch is worse"
    assert result.best_value == pytest.approx(last)
    task = recipe.make_task()
    val = task.train_dataset(index.val, index.info, recipe, 16, training=False, seed=0)
    model = result.model.keras_model
    model.compile(loss=task.loss(recipe), metrics=task.keras_metrics())
    assert model.evaluate(val, verbose=0, return_dict=True)["accuracy"] == pytest.approx(last, abs=1e-6)


def test_keep_best_reports_the_best_epoch(tiny_trained):
    _, _, result = tiny_trained
    assert result.best_value == pytest.approx(max(h["val_accuracy"] for h in result.history))


def test_schedule_and_keep_are_part_of_the_training_cache_key(tmp_path, tiny_data):
    from edgecv.orchestrator.keys import train_key

    path = write_recipe(tmp_path / "edgecv.yaml", tiny_data)
    plain = train_key(load_recipe(path), "idx")
    assert train_key(load_recipe(path, ["train.finetune.schedule=cosine"]), "idx") != plain
    assert train_key(load_recipe(path, ["train.keep=last"]), "idx") != plain
    # the defaults spelled out are the recipe as it was: the same cached model
    assert train_key(load_recipe(path, ["train.finetune.schedule=constant", "train.keep=best"]), "idx") == plain


def test_unknown_schedule_is_a_config_error_naming_the_choices(tmp_path, tiny_data):
    path = write_recipe(tmp_path / "edgecv.yaml", tiny_data)
    with pytest.raises(ConfigError, match="schedule") as e:
        load_recipe(path, ["train.warmup.schedule=linear"])
    assert "cosine" in str(e.value)
