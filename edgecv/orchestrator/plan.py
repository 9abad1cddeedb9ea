"""Planning: stage keys from cheap facts (the build graph `--dry-run` prints is made of them, see
`graph.py`), and the checks that reject a bad target before any training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from edgecv.config.target import effective_gates
from edgecv.errors import ConfigError
from edgecv.orchestrator import keys
from edgecv.exporters import get_exporter
from edgecv.passes.base import parse_pass_config
from edgecv.registry import UnknownName
from edgecv.runtimes import get_runtime

STAGES = ("index", "train", "reference", "passes", "export", "validate")


@dataclass
class StageRecord:
    stage: str
    key: str
    hit: bool
    seconds: float = 0.0
    target: Optional[str] = None
    artifact: Optional[str] = None


@dataclass(frozen=True)
class BuildKeys:
    index: str
    train: str
    calibration: str
    reference: str

    @classmethod
    def of(cls, recipe) -> "BuildKeys":
        idx = keys.index_key(recipe)
        train = keys.train_key(recipe, idx)
        return cls(idx, train, keys.calibration_key(recipe, idx), keys.reference_key(recipe, train, idx))


def runtime_settings(target, spec) -> dict:
    """What decides how an artifact runs, for its keys: the target's runtime section and the
    defaults its format's runtime declares (ONNX: the int8 arithmetic edgecv picks)."""
    try:
        declared = get_runtime(spec.format).key_settings()
    except UnknownName:  # a format registered without a runtime of its own
        declared = {}
    return {**target.runtime.model_dump(mode="json"), **declared}


def artifact_keys(recipe, k: BuildKeys, target, spec) -> dict:
    """passes (when the artifact has any), export and validate keys of one artifact."""
    model_key = k.train
    out = {}
    if spec.passes:
        model_key = out["passes"] = keys.passes_key(k.train, spec.passes, k.calibration, recipe.resolve)
    searched = None
    if "accuracy_aware" in spec.options:  # the export itself is validated against the gates
        searched = {"gates": effective_gates(recipe.gates, target, spec).model_dump(mode="json"), "reference": k.reference,
                    "runtime": runtime_settings(target, spec)}
    out["export"] = keys.export_key(model_key, spec, k.calibration, recipe.name, searched)
    out["validate"] = keys.validate_key(out["export"], k.reference, runtime_settings(target, spec))
    return out


def check_plan(targets, task=None, recipe_gates=None) -> None:
    """Reject unknown formats, precisions and passes before any training starts."""
    problems = []
    for t in targets:
        for a in t.artifacts:
            try:
                exp = get_exporter(a.format)
            except KeyError as e:
                problems.append(f"target {t.name}, artifact {a.name}: {e.args[0]}")
                continue
            if a.precision not in exp.precisions:
                problems.append(f"target {t.name}, artifact {a.name}: format {a.format} supports precision "
                                f"{', '.join(exp.precisions)}, not {a.precision}")
            try:  # the spec as the exporter will be held to it: with its effective gates
                exp.check_spec(a.model_copy(update={"gates": effective_gates(recipe_gates, t, a)}), task)
            except ConfigError as e:
                problems.append(f"target {t.name}, artifact {a.name}: {e}")
            for option in (o for o in a.options if task is not None and o in task.refused_options):
                problems.append(f"target {t.name}, artifact {a.name}: options.{option} is refused for task "
                                f"{task.name}: {task.refused_options[option]}; remove it")
            for i, raw in enumerate(a.passes):
                try:
                    cls, _ = parse_pass_config(raw)
                except (KeyError, ValueError) as e:  # pydantic's ValidationError is a ValueError
                    msg = e.args[0] if isinstance(e, KeyError) else str(e)
                    problems.append(f"target {t.name}, artifact {a.name}, passes[{i}]: {msg}")
                    continue
                if cls.stage != "model":
                    problems.append(f"target {t.name}, artifact {a.name}, passes[{i}]: {cls.name} is int8 weight "
                                    f"preparation that the {a.format} exporter runs right before converting; switch "
                                    f"it in the artifact's options (tflite: options.ptq.{cls.name}; onnx, tensorrt: "
                                    f"options.{cls.name}), not in passes")
                    continue
                if a.precision not in cls.precisions:
                    problems.append(f"target {t.name}, artifact {a.name}: pass {cls.name} suits precision "
                                    f"{', '.join(cls.precisions)}, not {a.precision}")
                if task is not None and task.quality_metric is None and cls.needs & {"train_data", "teacher"}:
                    problems.append(f"target {t.name}, artifact {a.name}: pass {cls.name} trains, and task "
                                    f"{task.name} has no quality metric to train for")
                elif task is not None and cls.name in task.refused_passes:
                    problems.append(f"target {t.name}, artifact {a.name}: pass {cls.name} is refused for task "
                                    f"{task.name}: {task.refused_passes[cls.name]}; drop the pass")
                elif task is not None and not task.passes_can_train and cls.needs & {"train_data", "teacher"}:
                    problems.append(f"target {t.name}, artifact {a.name}: pass {cls.name} trains, and task "
                                    f"{task.name}'s kept model has no training head to train with; drop the pass")
    if problems:
        raise ConfigError("the plan cannot be built:\n  - " + "\n  - ".join(problems))


def check_untrainable_passes(targets, why: str) -> None:
    """Passes that train (prune, qat, swap) need labelled images; reject them when `why` says there
    are none."""
    problems = [f"target {t.name}, artifact {a.name}: pass {parse_pass_config(raw)[0].name} trains, and {why}"
                for t in targets for a in t.artifacts for raw in a.passes
                if parse_pass_config(raw)[0].needs & {"train_data", "teacher"}]
    if problems:
        raise ConfigError("the plan cannot be built:\n  - " + "\n  - ".join(problems)
                          + "\n  use class sub-folders named after the model's labels, or targets without these passes")
