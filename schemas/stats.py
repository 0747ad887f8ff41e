"""Small statistics shared by the SQL views and the briefing."""

from __future__ import annotations

import math

from schemas.ddl import Z


def share_interval(k: int, n: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of the share k/n (90% with the default z), as the
    `share_low` / `share_high` SQL macros compute it; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
