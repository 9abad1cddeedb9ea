"""The accuracy-latency Pareto front and the pick under a latency budget (pure numpy-free Python)."""

from __future__ import annotations

from typing import Optional, Sequence


def pareto_front(accuracy: Sequence[float], latency: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: none is at least as accurate and at least as
    fast while better in one. Ordered fastest first."""
    front = []
    for i, (a, t) in enumerate(zip(accuracy, latency)):
        dominated = any(a2 >= a and t2 <= t and (a2 > a or t2 < t)
                        for j, (a2, t2) in enumerate(zip(accuracy, latency)) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (latency[i], -accuracy[i]))


def pick_under_budget(accuracy: Sequence[float], latency: Sequence[float], budget_ms: float) -> Optional[int]:
    """The most accurate point whose latency is within the budget (the faster one on a tie);
    None when none fits."""
    fits = [i for i, t in enumerate(latency) if t <= budget_ms]
    if not fits:
        return None
    return max(fits, key=lambda i: (accuracy[i], -latency[i]))
