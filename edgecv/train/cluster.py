"""This process's place in a multi-worker training cluster, read from `TF_CONFIG` (no TensorFlow).

TensorFlow's convention: the `chief` task if the cluster has one, else worker 0, is the chief. All
workers train together (MultiWorkerMirroredStrategy); only the chief writes the model, the cache
entry, the artifacts and the reports.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

from edgecv.errors import ConfigError


@dataclass(frozen=True)
class ClusterRole:
    task_type: str
    index: int
    workers: int  # every task that trains: chief + workers

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0 and not self._has_chief)

    _has_chief: bool = False

    def __str__(self) -> str:
        return f"{self.task_type} {self.index} of {self.workers} training processes"


def cluster_role(environ=os.environ) -> Optional[ClusterRole]:
    """None without TF_CONFIG (one process trains alone)."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        cluster, task = cfg["cluster"], cfg["task"]
        role = ClusterRole(task["type"], int(task["index"]),
                           len(cluster.get("chief", [])) + len(cluster.get("worker", [])), "chief" in cluster)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG is not a valid cluster spec ({e}): expected "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None
    if role.task_type not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type {role.task_type!r}: edgecv trains with chief and worker tasks only")
    return role
