"""What the text evaluators share: tokenisers, normalisation, n-grams and argument checks.

* :func:`rouge_tokens` is ``rouge-score``'s default tokeniser (no stemmer):
  lowercase, every run of characters outside ``[a-z0-9]`` is a separator.
  Note that letters outside ASCII (``é``, ``ß``, any non-Latin script) are
  separators too — that is what the reference package does.
* :func:`tokenize_13a` is ``sacrebleu``'s default ``13a`` tokeniser (the
  ``mteval-v13a`` rules WMT uses): punctuation split off, except ``.`` and
  ``,`` between digits and ``-`` after a digit.
* :func:`squad_normalize` is the SQuAD evaluation script's ``normalize_answer``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from genarch.errors import InvalidInputError
from genarch.schemas import TextResult
from genarch.validation import describe, require_text

__all__ = [
    "ngram_counts",
    "output_text",
    "reference_texts",
    "rouge_tokens",
    "squad_normalize",
    "tokenize_13a",
]

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """``rouge-score``'s default tokens of ``text`` (lowercased ``[a-z0-9]`` runs).

    Examples:
        >>> rouge_tokens("The cat's hat, 2 café!")
        ['the', 'cat', 's', 'hat', '2', 'caf']
    """
    return [token for token in _NON_ALPHANUM.sub(" ", text.lower()).split() if token]


# sacrebleu's TokenizerRegexp rules, in order (sacrebleu/tokenizers/tokenizer_re.py)
_RULES_13A = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def tokenize_13a(text: str) -> list[str]:
    """``sacrebleu``'s ``13a`` tokens of ``text`` (after its trailing whitespace is cut).

    Examples:
        >>> tokenize_13a("Hello, world (v3.11)!")
        ['Hello', ',', 'world', '(', 'v3.11', ')', '!']
    """
    line = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&")
        line = line.replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _RULES_13A:
        line = pattern.sub(replacement, line)
    return line.split()


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, drop punctuation, articles and extra spaces.

    The steps and their order are those of the official evaluation script
    (``normalize_answer``): lowercase; remove every ASCII punctuation
    character; remove the words ``a``, ``an``, ``the``; collapse whitespace.

    Examples:
        >>> squad_normalize("  The Eiffel-Tower, in Paris! ")
        'eiffeltower in paris'
    """
    lowered = text.lower()
    unpunctuated = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", unpunctuated).split())


def ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each ``n``-gram of ``tokens`` occurs.

    Examples:
        >>> ngram_counts(["a", "b", "a", "b"], 2)[("a", "b")]
        2
    """
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def output_text(result: object, where: str, name: str = "result") -> str:
    """The text of a generated output: a ``str`` or a :class:`~genarch.schemas.TextResult`.

    Raises:
        InvalidInputError: anything else (naming ``name``), or invalid Unicode.
    """
    if isinstance(result, TextResult):
        return result.text
    if not isinstance(result, str):
        raise InvalidInputError(
            f"{where} expected {name} as a str or TextResult, got {describe(result)}"
        )
    return require_text(result, where, name=name)


def reference_texts(references: object, where: str, name: str = "request") -> tuple[str, ...]:
    """One reference (a ``str``) or several (a non-empty sequence of ``str``), as a tuple.

    Raises:
        InvalidInputError: not a string nor a non-empty sequence of strings (naming ``name``).
    """
    if isinstance(references, str):
        return (require_text(references, where, name=name),)
    if not isinstance(references, Sequence) or isinstance(references, bytes) or not references:
        raise InvalidInputError(
            f"{where} expected {name} as a reference str or a non-empty sequence of them, "
            f"got {describe(references)}"
        )
    for index, reference in enumerate(references):
        require_text(reference, where, name=f"{name}[{index}]")
    return tuple(references)
