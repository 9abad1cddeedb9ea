"""Recipe and target configuration: YAML files parsed into pydantic models."""

from edgecv.config.loader import list_targets, load_recipe, load_target
from edgecv.config.recipe import Recipe
from edgecv.config.target import ArtifactSpec, Gates, Target

__all__ = ["Recipe", "Target", "ArtifactSpec", "Gates", "load_recipe", "load_target", "list_targets"]
