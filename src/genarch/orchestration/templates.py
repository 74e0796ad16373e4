"""Typed prompt templates that user input cannot abuse, and few-shot prompts.

A :class:`TextTemplate` is parsed **once**, when it is built, into literal text
and ``{name}`` placeholders. Rendering joins the literal parts with the values
— it never calls :meth:`str.format` on text that contains a value — so a value
such as ``"{0.__class__}"`` or ``"{{secret}}"`` appears in the prompt exactly
as given, and is never looked up, evaluated or treated as a placeholder.

Template syntax: ``{name}`` is a placeholder (``name`` a Python identifier);
``{{`` and ``}}`` are literal braces. Anything else inside braces (``{0}``,
``{a.b}``, ``{x!r}``, an unmatched brace) is refused when the template is built.

Every template has a pydantic ``schema``: declared by you (any field types and
constraints) or derived from the placeholders (each a string; numbers are
converted). Missing and unexpected variables, and values the schema refuses,
raise :class:`~genarch.errors.InvalidInputError` naming them.

:class:`FewShotTemplate` builds zero-, one- and few-shot prompts: a prefix, the
examples an :mod:`example selector <genarch.orchestration.examples>` picks for
this input, and a suffix, optionally dropping examples until the prompt fits a
token budget measured with the real tokeniser. :meth:`TextTemplate.render_within`
shortens one long value (retrieved context, a document) so a prompt fits; the
budgets themselves (:class:`~genarch.orchestration.token_budget.TokenBudget`,
:func:`~genarch.orchestration.token_budget.trim_to_tokens`) live in
:mod:`genarch.orchestration.token_budget`.

Examples:
    >>> template = TextTemplate("Translate to {language}: {text}")
    >>> sorted(template.variables)
    ['language', 'text']
    >>> template.render({"language": "French", "text": "{0.__class__} and {{secret}}"})
    'Translate to French: {0.__class__} and {{secret}}'
    >>> template.render({"language": "French"})
    Traceback (most recent call last):
    ...
    genarch.errors.InvalidInputError: TextTemplate.render: missing variable(s) ['text'] (expected ['language', 'text'], got ['language'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from genarch._deprecated import moved_module
from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.token_budget import TokenBudget, longest_fitting_prefix
from genarch.schemas import describe_validation_error
from genarch.validation import describe

__all__ = [
    "ExampleSelector",
    "FewShotTemplate",
    "TextTemplate",
]

# Names that lived here until the token budgets got their own module: they warn, then forward.
__getattr__ = moved_module(
    __name__,
    dict.fromkeys(
        ("TokenBudget", "count_tokens", "trim_to_tokens"), "genarch.orchestration.token_budget"
    ),
)

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class _Slot:
    """A ``{name}`` placeholder of a parsed template."""

    name: str


_Part = str | _Slot


def _parse(text: str, where: str) -> tuple[_Part, ...]:
    """Split template text into literal strings and :class:`_Slot` placeholders."""
    parts: list[_Part] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        token = match.group()
        position = match.end()
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match.group(1)
        if name is None or not _IDENTIFIER.match(name):
            raise ConfigError(
                f"{where}: {token!r} at character {match.start()} is not a placeholder; "
                "placeholders are {name} with a Python identifier as name, and literal "
                "braces are written {{ and }}"
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_Slot(name))
    literal.append(text[position:])
    if "".join(literal):
        parts.append("".join(literal))
    return tuple(parts)


def _derived_schema(name: str, variables: frozenset[str]) -> type[BaseModel]:
    fields: dict[str, Any] = dict.fromkeys(sorted(variables), (str, ...))
    config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    return create_model(f"{name}Variables", __config__=config, **fields)


def _check_mapping(values: object, where: str) -> Mapping[str, object]:
    if not isinstance(values, Mapping):
        raise InvalidInputError(
            f"{where} expected a mapping of variable values, got {describe(values)}"
        )
    for key in values:
        if not isinstance(key, str):
            raise InvalidInputError(f"{where} expected variable names as str, got {describe(key)}")
    return values


def _check_names(values: Mapping[str, object], variables: frozenset[str], where: str) -> None:
    missing = sorted(variables - set(values))
    unexpected = sorted(set(values) - variables)
    problems = []
    if missing:
        problems.append(f"missing variable(s) {missing}")
    if unexpected:
        problems.append(f"unexpected variable(s) {unexpected}")
    if problems:
        raise InvalidInputError(
            f"{where}: {' and '.join(problems)} "
            f"(expected {sorted(variables)}, got {sorted(values)})"
        )


def _unprintable(values: Mapping[str, object], where: str, error: Exception) -> InvalidInputError:
    """The error for a value that has no text (its ``str()`` raised), naming the variable."""
    for name, value in values.items():
        try:
            str(value)
        except Exception:  # any failure of a value's __str__ is the caller's to fix
            return _text_error(name, value, where, error)
    return InvalidInputError(f"{where}: a value cannot be turned into text ({error})")


def _text_error(name: str, value: object, where: str, error: Exception) -> InvalidInputError:
    shown = (
        f"an int of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    )
    return InvalidInputError(
        f"{where}: the value of variable {name!r} ({shown}) cannot be turned into text: {error}"
    )


def _text(value: object, name: str, where: str) -> str:
    """``str(value)``; a value whose ``str()`` fails is an InvalidInputError naming ``name``."""
    try:
        return str(value)
    except Exception as error:  # e.g. ValueError for an int of more than 4300 digits
        raise _text_error(name, value, where, error) from None


def _texts(validated: BaseModel, variables: frozenset[str], where: str) -> dict[str, str]:
    return {name: _text(getattr(validated, name), name, where) for name in variables}


class TextTemplate:
    """A prompt template with typed variables, rendered without ``str.format``.

    Args:
        text: the template; ``{name}`` marks a variable, ``{{``/``}}`` are braces.
        schema: a pydantic model whose fields are exactly the template's
            variables, to type and constrain them; default: every variable is a
            required string (numbers are converted).
        name: shown in error messages and traces.

    Raises:
        ConfigError: the text has a malformed placeholder, or ``schema``'s
            fields are not the template's variables.

    Examples:
        >>> from pydantic import BaseModel, Field
        >>> class Inputs(BaseModel):
        ...     topic: str
        ...     count: int = Field(ge=1, le=5)
        >>> template = TextTemplate("Give {count} facts about {topic}.", schema=Inputs)
        >>> template.render({"topic": "sets", "count": 3})
        'Give 3 facts about sets.'
        >>> template.render({"topic": "sets", "count": 9})
        Traceback (most recent call last):
        ...
        genarch.errors.InvalidInputError: TextTemplate.render: Inputs.count: Input should be less than or equal to 5 (got 9)
    """

    def __init__(
        self,
        text: str,
        *,
        schema: type[BaseModel] | None = None,
        name: str = "TextTemplate",
    ) -> None:
        if not isinstance(text, str):
            raise ConfigError(
                f"TextTemplate expected the template text as str, got {describe(text)}"
            )
        self._text = text
        self._name = name
        self._parts = _parse(text, name)
        self._variables = frozenset(p.name for p in self._parts if isinstance(p, _Slot))
        if schema is None:
            schema = _derived_schema(name, self._variables)
        elif not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise ConfigError(
                f"{name}: schema must be a pydantic model class, got {describe(schema)}"
            )
        else:
            fields = frozenset(schema.model_fields)
            if fields != self._variables:
                raise ConfigError(
                    f"{name}: the schema's fields {sorted(fields)} are not the template's "
                    f"variables {sorted(self._variables)}"
                )
        self._schema = schema

    @property
    def text(self) -> str:
        """The template text as given."""
        return self._text

    @property
    def name(self) -> str:
        """The name shown in errors."""
        return self._name

    @property
    def variables(self) -> frozenset[str]:
        """The names of the template's placeholders."""
        return self._variables

    @property
    def schema(self) -> type[BaseModel]:
        """The pydantic model that validates the variables."""
        return self._schema

    def validate_values(self, values: Mapping[str, object]) -> BaseModel:
        """Check names and types of ``values``; return them as a ``schema`` instance.

        Raises:
            InvalidInputError: a variable is missing or unexpected, or a value is
                refused by the schema (each problem named).
        """
        where = f"{self._name}.render"
        values = _check_mapping(values, where)
        _check_names(values, self._variables, where)
        try:
            return self._schema.model_validate(dict(values))
        except ValidationError as error:
            raise InvalidInputError(
                f"{where}: {describe_validation_error(self._schema.__name__, error)}"
            ) from None
        except ValueError as error:  # str() of a value failed, e.g. an int of 5000 digits
            raise _unprintable(values, where, error) from None

    def render(self, values: Mapping[str, object]) -> str:
        """The prompt with every placeholder replaced by its value, literally.

        Raises:
            InvalidInputError: see :meth:`validate_values`.
        """
        validated = self.validate_values(values)
        return self._join(_texts(validated, self._variables, f"{self._name}.render"))

    def _join(self, texts: Mapping[str, str]) -> str:
        return "".join(texts[p.name] if isinstance(p, _Slot) else p for p in self._parts)

    def partial(self, values: Mapping[str, object]) -> TextTemplate:
        """A template with some variables fixed; their values become literal text.

        Raises:
            InvalidInputError: a name is not a variable of this template.

        Examples:
            >>> TextTemplate("{greeting}, {name}!").partial({"greeting": "{hi}"}).render({"name": "Ada"})
            '{hi}, Ada!'
        """
        values = _check_mapping(values, f"{self._name}.partial")
        unknown = sorted(set(values) - self._variables)
        if unknown:
            raise InvalidInputError(
                f"{self._name}.partial: unknown variable(s) {unknown} "
                f"(variables are {sorted(self._variables)})"
            )
        where = f"{self._name}.partial"
        escaped = {
            name: _text(value, name, where).replace("{", "{{").replace("}", "}}")
            for name, value in values.items()
        }
        text = "".join(
            escaped.get(p.name, "{" + p.name + "}")
            if isinstance(p, _Slot)
            else p.replace("{", "{{").replace("}", "}}")
            for p in self._parts
        )
        return TextTemplate(text, name=self._name)

    def render_within(
        self,
        values: Mapping[str, object],
        budget: TokenBudget,
        *,
        trim: str,
        marker: str = " […]",
    ) -> str:
        """Render, shortening the value of ``trim`` until the prompt fits ``budget``.

        The value keeps its beginning, is cut at a token boundary of the real
        tokeniser and ends with ``marker`` when it was shortened.

        Raises:
            InvalidInputError: ``trim`` is not a variable, or the prompt does not
                fit even with that value empty.

        Examples:
            >>> from genarch.data.byte_tokenizer import ByteTokenizer
            >>> template = TextTemplate("Context: {context}\\nQ: {question}")
            >>> budget = TokenBudget(ByteTokenizer(), max_tokens=40)
            >>> prompt = template.render_within(
            ...     {"context": "word " * 50, "question": "why?"}, budget, trim="context")
            >>> budget.count(prompt) <= 40, prompt.endswith("[…]\\nQ: why?")
            (True, True)
        """
        validated = self.validate_values(values)
        if trim not in self._variables:
            raise InvalidInputError(
                f"{self._name}.render_within: trim={trim!r} is not a variable "
                f"(variables are {sorted(self._variables)})"
            )
        texts = _texts(validated, self._variables, f"{self._name}.render_within")
        full = self._join(texts)
        if budget.fits(full):
            return full

        def with_value(value: str) -> str:
            return self._join({**texts, trim: value})

        if not budget.fits(with_value(marker)):
            raise InvalidInputError(
                f"{self._name}.render_within: the prompt needs "
                f"{budget.count(with_value(marker))} tokens without any of {trim!r}, "
                f"more than the budget of {budget.max_tokens}"
            )
        return with_value(
            longest_fitting_prefix(
                texts[trim], budget.tokenizer, lambda v: budget.fits(with_value(v + marker))
            )
            + marker
        )

    def __repr__(self) -> str:
        return f"TextTemplate({self._text!r})"


# ------------------------------------------------------------------ few-shot


@runtime_checkable
class ExampleSelector(Protocol):
    """Chooses the examples to show for one input (see :mod:`genarch.orchestration.examples`).

    ``select(values)`` returns examples (mappings from the example template's
    variables to values), most useful first; the same values always give the
    same examples.
    """

    def select(self, values: Mapping[str, object]) -> list[dict[str, str]]: ...


class FewShotTemplate:
    """Zero-, one- or few-shot prompts: prefix, selected examples, suffix.

    Args:
        prefix: the instructions (a template or plain text, which may have variables).
        example: how one example is rendered (its variables are the example's keys).
        suffix: the part with the actual input, e.g. ``"Q: {question}\\nA:"``.
        selector: picks examples for each input (an
            :class:`~genarch.orchestration.examples.ExampleSelector`); ``None`` is zero-shot.
        separator: text between prefix, examples and suffix.
        budget: if given, the least useful examples are dropped until the prompt
            fits (counted with the real tokeniser).

    The template's ``variables`` are the prefix's and suffix's; example values
    come from the selector and are inserted literally like any value.

    Raises:
        ConfigError: a part is not a template or text.

    Examples:
        >>> from genarch.orchestration.examples import FixedExamples
        >>> shots = FixedExamples([{"q": "2+2", "a": "4"}, {"q": "3*3", "a": "9"}])
        >>> template = FewShotTemplate(
        ...     prefix="Answer with a number.",
        ...     example=TextTemplate("Q: {q}\\nA: {a}"),
        ...     suffix=TextTemplate("Q: {question}\\nA:"),
        ...     selector=shots,
        ... )
        >>> print(template.render({"question": "5-1"}))
        Answer with a number.
        <BLANKLINE>
        Q: 2+2
        A: 4
        <BLANKLINE>
        Q: 3*3
        A: 9
        <BLANKLINE>
        Q: 5-1
        A:
    """

    def __init__(
        self,
        *,
        prefix: TextTemplate | str,
        example: TextTemplate | str,
        suffix: TextTemplate | str,
        selector: ExampleSelector | None = None,
        separator: str = "\n\n",
        budget: TokenBudget | None = None,
    ) -> None:
        self._prefix = self._template(prefix, "prefix")
        self._example = self._template(example, "example")
        self._suffix = self._template(suffix, "suffix")
        if selector is not None and not isinstance(selector, ExampleSelector):
            raise ConfigError(
                f"FewShotTemplate: selector must have select(values), got {describe(selector)}"
            )
        if not isinstance(separator, str):
            raise ConfigError(
                f"FewShotTemplate: separator must be a str, got {describe(separator)}"
            )
        if budget is not None and not isinstance(budget, TokenBudget):
            raise ConfigError(
                f"FewShotTemplate: budget must be a TokenBudget, got {describe(budget)}"
            )
        self._selector = selector
        self._separator = separator
        self._budget = budget
        self._variables = self._prefix.variables | self._suffix.variables

    @staticmethod
    def _template(value: TextTemplate | str, role: str) -> TextTemplate:
        if isinstance(value, TextTemplate):
            return value
        if isinstance(value, str):
            return TextTemplate(value, name=f"FewShotTemplate.{role}")
        raise ConfigError(
            f"FewShotTemplate: {role} must be a TextTemplate or str, got {describe(value)}"
        )

    @property
    def variables(self) -> frozenset[str]:
        """The prefix's and suffix's variables."""
        return self._variables

    @property
    def example_template(self) -> TextTemplate:
        """How one example is rendered."""
        return self._example

    def examples_for(self, values: Mapping[str, object]) -> list[dict[str, str]]:
        """The examples the selector picks for ``values`` (all of them, before any budget)."""
        if self._selector is None:
            return []
        return list(self._selector.select(values))

    def render(self, values: Mapping[str, object]) -> str:
        """The prompt for ``values``.

        Raises:
            InvalidInputError: missing/unexpected variables, an example that does
                not fill the example template, or a prompt that does not fit the
                budget even with no examples.
        """
        values = _check_mapping(values, "FewShotTemplate.render")
        _check_names(values, self._variables, "FewShotTemplate.render")
        prefix = self._prefix.render({k: values[k] for k in self._prefix.variables})
        suffix = self._suffix.render({k: values[k] for k in self._suffix.variables})
        shots = [self._example.render(example) for example in self.examples_for(values)]
        while True:
            prompt = self._separator.join(part for part in (prefix, *shots, suffix) if part)
            if self._budget is None or self._budget.fits(prompt):
                return prompt
            if not shots:
                raise InvalidInputError(
                    f"FewShotTemplate.render: the prompt needs {self._budget.count(prompt)} "
                    f"tokens with no examples, more than the budget of {self._budget.max_tokens}"
                )
            shots.pop()  # the least useful example goes first

    def __repr__(self) -> str:
        return (
            f"FewShotTemplate(prefix={self._prefix.text!r}, example={self._example.text!r}, "
            f"suffix={self._suffix.text!r})"
        )
