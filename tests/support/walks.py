"""Seeded random-walk bars for the live tests: prices with two decimals, as exchanges quote."""

from __future__ import annotations

import random


def random_walk(
    count: int, *, seed: int, start: float = 100.0
) -> list[tuple[float, float, float, float]]:
    """`count` (open, high, low, close) rows; each open is the previous close."""
    rng = random.Random(seed)
    rows = []
    close = start
    for _ in range(count):
        opening = close
        close = round(max(1.0, opening * (1 + rng.gauss(0, 0.01))), 2)
        high = round(max(opening, close) * (1 + abs(rng.gauss(0, 0.003))), 2)
        low = round(min(opening, close) * (1 - abs(rng.gauss(0, 0.003))), 2)
        rows.append((opening, high, low, close))
    return rows
