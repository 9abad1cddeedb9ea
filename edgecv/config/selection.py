"""The recipe's `select:` section: which backbones `edgecv select` compares, and how.

Pure pydantic (no TensorFlow), typing forms that Python 3.8 reads: the recipe is parsed on devices too.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CandidateConfig(_Strict):
    backbone: str = Field(..., description="a backbone name (`edgecv backbones`)")
    alpha: Optional[float] = Field(None, gt=0.0, description="width multiplier (MobileNet families)")
    input_size: int = Field(..., ge=8, description="input height in pixels; the width keeps the recipe's aspect ratio")
    weights: Optional[str] = Field(None, description="no-top h5 (relative to the recipe), imagenet, or none; "
                                   "default: found in weights_dir, else imagenet")


class SelectConfig(_Strict):
    catalogue: bool = Field(True, description="compare edgecv's built-in candidates (MobileNet v1/v2/v3 at several "
                            "widths and sizes, EfficientNetB0, ResNet50) besides `candidates`")
    candidates: List[CandidateConfig] = Field(default_factory=list, description="more candidates to compare")
    weights_dir: Optional[Path] = Field(None, description="folder of keras-applications no-top h5 files (their "
                                        "original names); a candidate without `weights` uses its file from here")
    swap: dict = Field(default_factory=dict, description="extra settings of the swap pass written for the pick "
                       "(epochs, temperature ...; `edgecv passes -v`)")
    repeats: int = Field(3, ge=1, description="latency rounds over all candidates; the median is reported")
