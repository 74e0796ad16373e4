"""Generated tables for the privacy tests: mixed types, known dependencies."""

from __future__ import annotations

from typing import Any

import numpy as np


def mixed_table(num_rows: int, seed: int = 0) -> dict[str, Any]:
    """Columns with known dependencies: age -> income, age -> smoker -> sick; region independent."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, num_rows)
    income = np.exp(rng.normal(9.0 + 0.02 * age, 0.3))
    smoker = np.where(rng.random(num_rows) < np.where(age < 40, 0.6, 0.15), "yes", "no")
    sick = rng.random(num_rows) < np.where(smoker == "yes", 0.7, 0.1)
    region = rng.choice(np.array(["north", "south", "east", "west"]), num_rows)
    return {"age": age, "income": income, "smoker": smoker, "sick": sick, "region": region}
