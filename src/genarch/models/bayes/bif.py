"""BIF (Bayesian Interchange Format) — the text format pgmpy and bnlearn exchange.

Written::

    network unknown {
    }
    variable rain {
      type discrete [ 2 ] { yes, no };
    }
    probability ( rain ) {
      table 0.2, 0.8;
    }
    probability ( wet | rain ) {
      (yes) 0.9, 0.1;
      (no) 0.1, 0.9;
    }

Read: the same, plus ``//`` and ``/* */`` comments, ``property`` lines
(ignored), and ``table`` for a variable with parents, whose values run over
the variable's own states slowest and the parent configurations fastest (last
parent fastest) — the layout pgmpy's ``BIFWriter`` writes. Rows of a table
given by parent states may come in any order; every parent configuration must
have one row.

Examples:
    >>> net = parse_bif('''
    ... network tiny { }
    ... variable rain { type discrete [ 2 ] { yes, no }; }
    ... probability ( rain ) { table 0.2, 0.8; }
    ... ''')
    >>> net.marginal("rain")
    {'yes': 0.2, 'no': 0.8}
    >>> parse_bif(format_bif(net)).cpts["rain"].tolist()
    [0.2, 0.8]
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from genarch.errors import InvalidInputError
from genarch.models.bayes.network import BayesianNetwork, BayesianNetworkConfig

__all__ = ["format_bif", "parse_bif", "read_bif", "write_bif"]

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_BLOCK = re.compile(r"\b(network|variable|probability)\s*(\([^)]*\)|[^\s{]+)?\s*\{", re.DOTALL)
_WORD = re.compile(r"[^\s,;(){}\[\]|]+")
_TYPE = re.compile(r"type\s+discrete\s*\[\s*(\d+)\s*\]\s*\{([^}]*)\}", re.DOTALL)
_ROW = re.compile(r"\(([^)]*)\)([^;]*);")
_TABLE = re.compile(r"\btable\b([^;]*);")


def _words(text: str) -> list[str]:
    return [w.strip("\"'") for w in _WORD.findall(text)]


def _numbers(text: str, where: str) -> list[float]:
    try:
        return [float(w) for w in _WORD.findall(text)]
    except ValueError as error:
        raise InvalidInputError(f"BIF {where}: {error}") from None


def _blocks(text: str) -> list[tuple[str, str, str]]:
    """(keyword, header, body) of each top-level block; bodies may nest one level of braces."""
    blocks = []
    position = 0
    while (match := _BLOCK.search(text, position)) is not None:
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if depth:
            raise InvalidInputError(
                f"BIF: the {match.group(1)} block at offset {match.start()} is not closed"
            )
        blocks.append((match.group(1), (match.group(2) or "").strip(), text[match.end() : end - 1]))
        position = end
    return blocks


def parse_bif(text: str, **config: Any) -> BayesianNetwork:
    """A network from BIF text; ``config`` sets the other config fields (``estimator``, ...).

    Raises:
        InvalidInputError: malformed text, a probability block for an unknown
            variable or of the wrong size, a missing table, or any check of
            :class:`BayesianNetwork` (naming the variable).
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"parse_bif expected BIF text, got {type(text).__name__}")
    states: dict[str, list[str]] = {}
    probabilities: list[tuple[list[str], str]] = []
    for keyword, header, body in _blocks(_COMMENTS.sub(" ", text)):
        if keyword == "variable":
            found = _TYPE.search(body)
            if found is None:
                raise InvalidInputError(
                    f"BIF variable {header!r}: expected 'type discrete [ n ] {{ ... }}'"
                )
            names = _words(found.group(2))
            if len(names) != int(found.group(1)):
                raise InvalidInputError(
                    f"BIF variable {header!r} declares {found.group(1)} states but lists {names}"
                )
            states[header] = names
        elif keyword == "probability":
            probabilities.append((_words(header), body))
    tables: dict[str, Any] = {}
    parents: dict[str, list[str]] = {}
    for family, body in probabilities:
        if not family or family[0] not in states:
            raise InvalidInputError(f"BIF probability block for unknown variable {family[:1]}")
        child, given = family[0], family[1:]
        for parent in given:
            if parent not in states:
                raise InvalidInputError(
                    f"BIF probability ( {child} | ... ) names unknown parent {parent!r}"
                )
        parents[child] = given
        tables[child] = _table(child, given, body, states)
    missing = sorted(set(states) - set(tables))
    if missing:
        raise InvalidInputError(f"BIF: no probability block for {missing}")
    variables = [{"name": n, "states": s, "parents": parents[n]} for n, s in states.items()]
    return BayesianNetwork(
        BayesianNetworkConfig.parse({"variables": variables, **config}), cpts=tables
    )


def _table(child: str, given: list[str], body: str, states: dict[str, list[str]]) -> Any:
    own = len(states[child])
    shape = [len(states[p]) for p in given] + [own]
    where = f"probability ( {child} | {', '.join(given)} )" if given else f"probability ( {child} )"
    table = _TABLE.search(body)
    if table is not None:
        values = np.array(_numbers(table.group(1), where))
        if values.size != int(np.prod(shape)):
            raise InvalidInputError(
                f"BIF {where}: expected {int(np.prod(shape))} values, got {values.size}"
            )
        # pgmpy's layout: the child's states slowest, then the parents (last fastest)
        return np.moveaxis(values.reshape([own, *shape[:-1]]), 0, -1)
    result = np.full(shape, np.nan)
    for row in _ROW.finditer(body):
        labels, numbers = _words(row.group(1)), _numbers(row.group(2), where)
        if len(labels) != len(given) or len(numbers) != own:
            raise InvalidInputError(
                f"BIF {where}: the row ({', '.join(labels)}) needs {len(given)} parent states and {own} values"
            )
        try:
            index = tuple(states[p].index(label) for p, label in zip(given, labels, strict=True))
        except ValueError:
            raise InvalidInputError(
                f"BIF {where}: the row ({', '.join(labels)}) names an unknown state"
            ) from None
        result[index] = numbers
    if np.isnan(result).any():
        raise InvalidInputError(f"BIF {where}: some parent configurations have no row")
    return result


def format_bif(network: BayesianNetwork, name: str = "unknown") -> str:
    """The network as BIF text (rows by parent states, 17 significant digits, so floats round-trip)."""
    lines = [f"network {name} {{", "}"]
    for variable in network.config.variables:
        states = ", ".join(variable.states)
        lines += [
            f"variable {variable.name} {{",
            f"  type discrete [ {len(variable.states)} ] {{ {states} }};",
            "}",
        ]
    for variable in network.config.variables:
        table = network.cpt(variable.name)
        if not variable.parents:
            lines += [f"probability ( {variable.name} ) {{", f"  table {_floats(table)};", "}"]
            continue
        lines.append(f"probability ( {variable.name} | {', '.join(variable.parents)} ) {{")
        choices = [network.states(p) for p in variable.parents]
        for index in itertools.product(*(range(len(c)) for c in choices)):
            labels = ", ".join(c[i] for c, i in zip(choices, index, strict=True))
            lines.append(f"  ({labels}) {_floats(table[index])};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _floats(values: Any) -> str:
    return ", ".join(repr(float(v)) for v in np.asarray(values).ravel())


def read_bif(path: str | os.PathLike[str], **config: Any) -> BayesianNetwork:
    """:func:`parse_bif` of a file."""
    return parse_bif(Path(path).read_text("utf-8"), **config)


def write_bif(
    network: BayesianNetwork, path: str | os.PathLike[str], name: str = "unknown"
) -> None:
    """Write :func:`format_bif` of ``network`` to ``path``."""
    Path(path).write_text(format_bif(network, name), "utf-8")
