"""Construction checks of a network: its structure (a DAG over declared states) and its tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from genarch.errors import ConfigError, InvalidInputError
from genarch.validation import describe

if TYPE_CHECKING:
    from genarch.models.bayes.network import BayesianNetworkConfig

__all__ = ["ROW_SUM_TOLERANCE", "checked_cpt", "checked_structure", "shown"]

Array = NDArray[np.float64]
ROW_SUM_TOLERANCE = 1e-9
"""How far from 1 a CPT row's sum may be."""


def checked_structure(config: BayesianNetworkConfig) -> tuple[int, ...]:
    """Validate names, states and parents; return a topological order (raises ConfigError)."""
    names = [v.name for v in config.variables]
    index: dict[str, int] = {}
    for position, variable in enumerate(config.variables):
        if variable.name in index:
            raise ConfigError(f"variable {variable.name!r} is declared twice")
        index[variable.name] = position
        if len(set(variable.states)) != len(variable.states):
            raise ConfigError(
                f"variable {variable.name!r} repeats a state: {list(variable.states)}"
            )
    for variable in config.variables:
        for parent_name in variable.parents:
            if parent_name not in index:
                raise ConfigError(
                    f"variable {variable.name!r} has the unknown parent {parent_name!r}; have {names}"
                )
        if len(set(variable.parents)) != len(variable.parents) or variable.name in variable.parents:
            raise ConfigError(
                f"variable {variable.name!r} lists a parent twice or itself: {list(variable.parents)}"
            )
    order: list[int] = []
    state = [0] * len(names)  # 0 new, 1 on the current path, 2 done
    for start in range(len(names)):
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, next_parent = stack.pop()
            if next_parent == 0:
                if state[node] == 2:
                    continue
                state[node] = 1
            parents = config.variables[node].parents
            if next_parent < len(parents):
                stack.append((node, next_parent + 1))
                parent = index[parents[next_parent]]
                if state[parent] == 1:
                    raise ConfigError(f"the graph has a cycle through variable {names[parent]!r}")
                if state[parent] == 0:
                    stack.append((parent, 0))
            else:
                state[node] = 2
                order.append(node)
    return tuple(order)


def shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else describe(value)


def checked_cpt(name: str, values: Any, shape: tuple[int, ...]) -> Array:
    try:
        table = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"the CPT of {name!r} is not a numeric table: {error}") from None
    if table.shape != shape:
        raise InvalidInputError(
            f"the CPT of {name!r} must have shape {shape} (parent states..., own states), got {table.shape}"
        )
    if not np.isfinite(table).all() or (table < 0).any():
        raise InvalidInputError(f"the CPT of {name!r} has a negative or non-finite entry")
    sums = table.sum(axis=-1)
    worst = np.unravel_index(int(np.argmax(np.abs(sums - 1.0))), sums.shape)
    if abs(float(sums[worst]) - 1.0) > ROW_SUM_TOLERANCE:
        raise InvalidInputError(
            f"the CPT of {name!r}: the row for parent states {tuple(int(i) for i in worst)} "
            f"sums to {float(sums[worst])!r}, not 1 (tolerance {ROW_SUM_TOLERANCE})"
        )
    table.setflags(write=False)
    return table
