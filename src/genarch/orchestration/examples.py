"""Example selectors: which examples a few-shot prompt shows for a given input.

Every selector implements :class:`~genarch.orchestration.templates.ExampleSelector`
(``select(values) -> list[dict[str, str]]``, most useful first) and is
deterministic: the same values always give the same examples.

* :class:`FixedExamples` — always the same examples (zero-, one-, few-shot).
* :class:`SimilarityExampleSelector` — the ``k`` examples closest to the input
  by cosine similarity of any :class:`~genarch.protocols.FeatureExtractor`'s vectors.
* :class:`MMRExampleSelector` — maximal marginal relevance: close to the input
  but not to each other (Carbonell & Goldstein, 1998), so the shots are diverse.
* :class:`LengthBudgetSelector` — as many examples (from a list or another
  selector, in its order) as fit a token budget measured with the real tokeniser.

Examples:
    >>> shots = FixedExamples([{"q": "1+1", "a": "2"}])
    >>> shots.select({"question": "anything"})
    [{'q': '1+1', 'a': '2'}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.templates import ExampleSelector, TextTemplate
from genarch.orchestration.token_budget import TokenBudget
from genarch.protocols import FeatureExtractor
from genarch.validation import describe

__all__ = [
    "FixedExamples",
    "LengthBudgetSelector",
    "MMRExampleSelector",
    "SimilarityExampleSelector",
    "mmr_order",
]


def _examples(examples: object, where: str) -> list[dict[str, str]]:
    """Validate examples: a sequence of mappings from str to str/int/float values."""
    if isinstance(examples, str | bytes) or not isinstance(examples, Sequence):
        raise ConfigError(f"{where} expected a sequence of examples, got {describe(examples)}")
    checked = []
    for index, example in enumerate(examples):
        if not isinstance(example, Mapping):
            raise ConfigError(f"{where}: example {index} is not a mapping: {describe(example)}")
        row: dict[str, str] = {}
        for key, value in example.items():
            if (
                not isinstance(key, str)
                or isinstance(value, bool)
                or not isinstance(value, str | int | float)
            ):
                raise ConfigError(
                    f"{where}: example {index} must map str to str/int/float, "
                    f"got {key!r}: {describe(value)}"
                )
            row[key] = str(value)
        checked.append(row)
    return checked


def _positive_int(value: object, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be an int >= 1, got {describe(value)}")
    return value


def _text(mapping: Mapping[str, object], keys: Sequence[str] | None, where: str) -> str:
    names = sorted(mapping) if keys is None else list(keys)
    missing = [name for name in names if name not in mapping]
    if missing:
        raise InvalidInputError(f"{where}: missing {missing} (have {sorted(mapping)})")
    return "\n".join(str(mapping[name]) for name in names)


class FixedExamples:
    """The same examples for every input, in the given order (none: zero-shot).

    Raises:
        ConfigError: an example is not a mapping of strings.
    """

    def __init__(self, examples: Sequence[Mapping[str, object]]) -> None:
        self._examples = _examples(examples, "FixedExamples")

    def select(self, values: Mapping[str, object]) -> list[dict[str, str]]:
        """All examples (copies), whatever the input."""
        return [dict(example) for example in self._examples]


class _EmbeddedExamples:
    """Examples with lazily computed, L2-normalised feature vectors (a pure cache)."""

    def __init__(
        self,
        examples: Sequence[Mapping[str, object]],
        extractor: FeatureExtractor[str],
        example_keys: Sequence[str] | None,
        query_variables: Sequence[str] | None,
        where: str,
    ) -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise ConfigError(f"{where} expected a FeatureExtractor, got {describe(extractor)}")
        self._where = where
        self._examples = _examples(examples, where)
        self._extractor = extractor
        self._example_keys = None if example_keys is None else tuple(example_keys)
        self._query_variables = None if query_variables is None else tuple(query_variables)
        for index, example in enumerate(self._examples):
            try:
                _text(example, self._example_keys, where)
            except InvalidInputError as error:
                raise ConfigError(f"example {index}: {error}") from None
        self._vectors: torch.Tensor | None = None

    def _normalised(self, texts: list[str]) -> torch.Tensor:
        vectors = self._extractor.extract(texts).detach().to(torch.float32).cpu()
        return torch.nn.functional.normalize(vectors, dim=1)

    def vectors(self) -> torch.Tensor:
        if self._vectors is None:
            texts = [_text(e, self._example_keys, self._where) for e in self._examples]
            self._vectors = self._normalised(texts)
        return self._vectors

    def query(self, values: Mapping[str, object]) -> torch.Tensor:
        if not isinstance(values, Mapping):
            raise InvalidInputError(
                f"{self._where}.select expected a mapping, got {describe(values)}"
            )
        return self._normalised([_text(values, self._query_variables, self._where)])[0]


class SimilarityExampleSelector:
    """The ``k`` examples most similar to the input (cosine of feature vectors).

    Args:
        examples: the pool of examples.
        extractor: any ``FeatureExtractor[str]`` (hashing, TF-IDF, a sentence encoder).
        k: how many examples to show.
        example_keys: the example fields compared with the input (default: all).
        query_variables: the input variables compared (default: all).

    Raises:
        ConfigError: bad examples, extractor or ``k``.

    Examples:
        >>> import torch
        >>> class Letters:  # a tiny FeatureExtractor: letter counts
        ...     dim = 26
        ...     def extract(self, items):
        ...         return torch.tensor([[t.lower().count(chr(97 + i)) for i in range(26)]
        ...                              for t in items], dtype=torch.float32).reshape(len(items), 26)
        >>> selector = SimilarityExampleSelector(
        ...     [{"q": "aaa"}, {"q": "bbb"}, {"q": "abab"}], Letters(), k=2, example_keys=["q"])
        >>> selector.select({"question": "bbbb"})
        [{'q': 'bbb'}, {'q': 'abab'}]
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, object]],
        extractor: FeatureExtractor[str],
        *,
        k: int = 3,
        example_keys: Sequence[str] | None = None,
        query_variables: Sequence[str] | None = None,
    ) -> None:
        where = "SimilarityExampleSelector"
        self._k = _positive_int(k, "k", where)
        self._pool = _EmbeddedExamples(examples, extractor, example_keys, query_variables, where)

    def select(self, values: Mapping[str, object]) -> list[dict[str, str]]:
        """The ``k`` nearest examples, most similar first (ties keep pool order)."""
        query = self._pool.query(values)
        vectors = self._pool.vectors()
        if len(vectors) == 0:
            return []
        scores = (vectors @ query).tolist()
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: self._k]
        return [dict(self._pool._examples[i]) for i in order]


def mmr_order(
    query: torch.Tensor, candidates: torch.Tensor, k: int, diversity: float = 0.5
) -> list[int]:
    """Indices of ``k`` candidates picked by maximal marginal relevance.

    Each pick maximises ``(1 - diversity) * sim(query, c) - diversity * max sim(c, picked)``
    over unit vectors (cosine). ``diversity=0`` is plain similarity ranking.

    Raises:
        InvalidInputError: shapes that do not fit, or ``diversity`` outside [0, 1].

    Examples:
        >>> import torch
        >>> q = torch.tensor([1.0, 0.0])
        >>> c = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.11], [0.5, 1.0]]), dim=1)
        >>> mmr_order(q, c, 2, diversity=0.0), mmr_order(q, c, 2, diversity=0.7)
        ([0, 1], [0, 2])
    """
    if query.ndim != 1 or candidates.ndim != 2 or candidates.shape[1] != query.shape[0]:
        raise InvalidInputError(
            f"mmr_order expected a query (dim,) and candidates (N, dim), got "
            f"{tuple(query.shape)} and {tuple(candidates.shape)}"
        )
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInputError(f"mmr_order: diversity must be in [0, 1], got {diversity}")
    relevance: list[float] = (candidates @ query).tolist()
    pairwise: list[list[float]] = (candidates @ candidates.T).tolist()
    picked: list[int] = []
    remaining = list(range(len(relevance)))
    while remaining and len(picked) < k:

        def value(i: int) -> float:
            redundancy = max((pairwise[i][j] for j in picked), default=0.0)
            return (1.0 - diversity) * relevance[i] - diversity * redundancy

        best = max(remaining, key=lambda i: (value(i), -i))
        picked.append(best)
        remaining.remove(best)
    return picked


class MMRExampleSelector:
    """``k`` examples relevant to the input but unlike each other (maximal marginal relevance).

    Args:
        examples: the pool of examples.
        extractor: any ``FeatureExtractor[str]``.
        k: how many examples to show.
        example_keys: the example fields compared with the input (default: all).
        query_variables: the input variables compared (default: all).
        diversity: 0 ranks by similarity only; 1 ignores the input after the first pick.

    Raises:
        ConfigError: bad examples, extractor, ``k`` or ``diversity``.
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, object]],
        extractor: FeatureExtractor[str],
        *,
        k: int = 3,
        diversity: float = 0.5,
        example_keys: Sequence[str] | None = None,
        query_variables: Sequence[str] | None = None,
    ) -> None:
        where = "MMRExampleSelector"
        self._k = _positive_int(k, "k", where)
        if (
            isinstance(diversity, bool)
            or not isinstance(diversity, int | float)
            or not 0.0 <= diversity <= 1.0
        ):
            raise ConfigError(
                f"{where}: diversity must be a number in [0, 1], got {describe(diversity)}"
            )
        self._diversity = float(diversity)
        self._pool = _EmbeddedExamples(examples, extractor, example_keys, query_variables, where)

    def select(self, values: Mapping[str, object]) -> list[dict[str, str]]:
        """The examples in pick order (most relevant first)."""
        query = self._pool.query(values)
        vectors = self._pool.vectors()
        order = mmr_order(query, vectors, self._k, self._diversity)
        return [dict(self._pool._examples[i]) for i in order]


class LengthBudgetSelector:
    """As many examples as fit in ``budget`` tokens, taken in order.

    Args:
        source: a list of examples, or another selector whose order is kept.
        example_template: how an example is rendered (its tokens are what counts).
        budget: the tokens all shown examples may use together, counted with
            the real tokeniser (``separator`` included between examples).
        separator: what separates rendered examples in the prompt.

    Raises:
        ConfigError: bad arguments.

    Examples:
        >>> from genarch.data.byte_tokenizer import ByteTokenizer
        >>> selector = LengthBudgetSelector(
        ...     [{"q": "short"}, {"q": "a much longer example"}, {"q": "tiny"}],
        ...     TextTemplate("Q: {q}"), TokenBudget(ByteTokenizer(), 20))
        >>> selector.select({})
        [{'q': 'short'}]
    """

    def __init__(
        self,
        source: Sequence[Mapping[str, object]] | ExampleSelector,
        example_template: TextTemplate,
        budget: TokenBudget,
        *,
        separator: str = "\n\n",
    ) -> None:
        where = "LengthBudgetSelector"
        self._selector: ExampleSelector = (
            source if isinstance(source, ExampleSelector) else FixedExamples(source)
        )
        if not isinstance(example_template, TextTemplate):
            raise ConfigError(f"{where} expected a TextTemplate, got {describe(example_template)}")
        if not isinstance(budget, TokenBudget):
            raise ConfigError(f"{where} expected a TokenBudget, got {describe(budget)}")
        self._template = example_template
        self._budget = budget
        self._separator = separator

    def select(self, values: Mapping[str, object]) -> list[dict[str, str]]:
        """The longest run of leading examples whose rendering fits the budget."""
        chosen: list[dict[str, str]] = []
        rendered: list[str] = []
        for example in self._selector.select(values):
            candidate = [*rendered, self._template.render(example)]
            if not self._budget.fits(self._separator.join(candidate)):
                break
            chosen.append(example)
            rendered = candidate
        return chosen
