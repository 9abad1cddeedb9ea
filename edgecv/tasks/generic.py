"""Any model's named outputs, judged by agreement with the float model only.

For a user's model whose outputs edgecv has no metric for (features, several heads, a regressor):
each named output is compared with the float model's as Polygraphy does (max/mean absolute error,
cosine similarity, SNR) and gated by the `output_*` gates and `tolerances: {OUTPUT: {atol, rtol}}`.
Calibration and validation images come from an unlabelled folder. Nothing is trained, so passes
that train (prune, qat, swap) do not apply.
"""

from __future__ import annotations

from typing import List, Sequence

from edgecv.tasks.base import OutputSpec, Task
from edgecv.data.unlabelled import unlabelled_index
from edgecv.errors import ConfigError


class Generic(Task):
    name = "generic"
    description = "a user's model with any named outputs; judged per output against the float model"
    needs_targets = False

    def read_data(self, recipe):
        if recipe.model.path is None:
            raise ConfigError("task generic judges a model you bring: give model.path (edgecv export MODEL)")
        facts = recipe.model_facts()
        return unlabelled_index(recipe.data, recipe.resolve, {"outputs": facts["outputs"],
                                                               "model_file": facts["model_file"]})

    def targets(self, samples: Sequence, info: dict):
        return None

    def output_spec(self, info: dict) -> List[OutputSpec]:
        return [OutputSpec(o["name"], tuple(o["shape"]), "float32", "the model's own output")
                for o in info.get("outputs", [])]
