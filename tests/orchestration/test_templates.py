"""Prompt templates and example selectors: typed, literal, within budget."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from genarch.data.bpe import BPETrainer
from genarch.data.byte_tokenizer import ByteTokenizer
from genarch.errors import ConfigError, GenarchError, InvalidInputError
from genarch.orchestration.examples import (
    FixedExamples,
    LengthBudgetSelector,
    MMRExampleSelector,
    SimilarityExampleSelector,
    mmr_order,
)
from genarch.orchestration.templates import FewShotTemplate, TextTemplate
from genarch.orchestration.token_budget import TokenBudget, trim_to_tokens
from genarch.protocols import PromptTemplate
from genarch.testing import check_prompt_template


class Letters:
    """A tiny FeatureExtractor[str]: letter counts."""

    dim = 26

    def extract(self, items: list[str]) -> torch.Tensor:
        rows = [[t.lower().count(chr(97 + i)) for i in range(26)] for t in items]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(items), 26)


@pytest.fixture(scope="module")
def bpe() -> object:
    return BPETrainer(vocab_size=300).train(["the quick brown fox jumps over the lazy dog"] * 20)


class Inputs(BaseModel):
    topic: str
    count: int = Field(ge=1, le=5)


# ------------------------------------------------------------------ conformance


def test_text_template_passes_the_kit() -> None:
    template = TextTemplate("Question about {topic}: {question}\nAnswer:")
    assert isinstance(template, PromptTemplate)
    check_prompt_template(template, {"topic": "sets", "question": "why?"})


def test_template_with_declared_schema_passes_the_kit() -> None:
    class Free(BaseModel):
        question: str
        context: str

    check_prompt_template(
        TextTemplate("{context}\n{question}", schema=Free), {"question": "q", "context": "c"}
    )


def test_few_shot_template_passes_the_kit() -> None:
    template = FewShotTemplate(
        prefix="Answer briefly.",
        example=TextTemplate("Q: {q}\nA: {a}"),
        suffix=TextTemplate("Q: {question}\nA:"),
        selector=FixedExamples([{"q": "2+2", "a": "4"}]),
    )
    assert isinstance(template, PromptTemplate)
    check_prompt_template(template, {"question": "3+3"})


# ------------------------------------------------------------------ literal values


@given(st.text())
def test_any_value_is_inserted_literally(value: str) -> None:
    assert TextTemplate("<{x}>").render({"x": value}) == f"<{value}>"


@given(st.text())
def test_escaped_braces_render_as_single_braces(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert TextTemplate(escaped).render({}) == text


@pytest.mark.parametrize(
    "hostile", ["{0.__class__}", "{{secret}}", "{x}", "%(x)s", "$x", "{x.__init__.__globals__}"]
)
def test_format_syntax_in_values_is_never_evaluated(hostile: str) -> None:
    text = TextTemplate("a {x} b {y}").render({"x": hostile, "y": "{x}"})
    assert text == f"a {hostile} b {{x}}"


@pytest.mark.parametrize("bad", ["{0}", "{a.b}", "{x!r}", "{x:>10}", "{", "}", "{}", "a {b"])
def test_malformed_placeholders_are_refused_when_built(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a placeholder"):
        TextTemplate(bad)


# ------------------------------------------------------------------ typed variables


def test_missing_and_unexpected_variables_are_named() -> None:
    template = TextTemplate("{a} {b}")
    with pytest.raises(
        InvalidInputError, match=r"missing variable\(s\) \['b'\].*unexpected variable\(s\) \['c'\]"
    ):
        template.render({"a": 1, "c": 2})


def test_derived_schema_requires_strings_and_converts_numbers() -> None:
    template = TextTemplate("{n} items")
    assert set(template.schema.model_fields) == {"n"}
    assert template.render({"n": 3}) == "3 items"
    with pytest.raises(InvalidInputError, match="n"):
        template.render({"n": object()})


def test_declared_schema_types_and_constrains_values() -> None:
    template = TextTemplate("{count} facts about {topic}", schema=Inputs)
    assert template.render({"topic": "sets", "count": "2"}) == "2 facts about sets"
    with pytest.raises(InvalidInputError, match="less than or equal to 5"):
        template.render({"topic": "sets", "count": 9})


def test_schema_must_match_the_placeholders() -> None:
    with pytest.raises(ConfigError, match="not the template's variables"):
        TextTemplate("{topic}", schema=Inputs)


def test_render_refuses_non_mappings_and_non_string_keys() -> None:
    template = TextTemplate("{a}")
    with pytest.raises(InvalidInputError):
        template.render(["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        template.render({1: "a"})  # type: ignore[dict-item]


def test_partial_fixes_values_literally() -> None:
    template = TextTemplate("{a}-{b}").partial({"a": "{b}"})
    assert template.variables == frozenset({"b"})
    assert template.render({"b": "x"}) == "{b}-x"
    with pytest.raises(InvalidInputError, match="unknown variable"):
        TextTemplate("{a}").partial({"z": 1})


# ------------------------------------------------------------------ token budgets


@given(st.text(max_size=60), st.integers(min_value=0, max_value=40))
def test_trim_keeps_the_longest_fitting_prefix(text: str, limit: int) -> None:
    tokenizer = ByteTokenizer()
    trimmed = trim_to_tokens(text, tokenizer, limit)
    assert text.startswith(trimmed)
    assert len(tokenizer.encode(trimmed)) <= limit
    if trimmed != text:  # one more character would not fit
        assert len(tokenizer.encode(text[: len(trimmed) + 1])) > limit


@given(st.text(max_size=60), st.integers(min_value=0, max_value=40))
def test_trim_can_keep_the_end(text: str, limit: int) -> None:
    tokenizer = ByteTokenizer()
    trimmed = trim_to_tokens(text, tokenizer, limit, keep="end")
    assert text.endswith(trimmed)
    assert len(tokenizer.encode(trimmed)) <= limit


def test_trim_uses_the_real_tokenizer(bpe: object) -> None:
    text = "the quick brown fox jumps over the lazy dog " * 5
    trimmed = trim_to_tokens(text, bpe, 7)  # type: ignore[arg-type]
    assert len(bpe.encode(trimmed)) <= 7 < len(bpe.encode(text))  # type: ignore[attr-defined]
    assert len(trimmed) > 7  # BPE tokens are longer than bytes


def test_render_within_shortens_only_the_named_value(bpe: object) -> None:
    template = TextTemplate("Context: {context}\nQuestion: {question}")
    budget = TokenBudget(bpe, 30)  # type: ignore[arg-type]
    prompt = template.render_within(
        {"context": "the lazy dog " * 40, "question": "the fox?"}, budget, trim="context"
    )
    assert budget.fits(prompt)
    assert prompt.endswith(" […]\nQuestion: the fox?")


def test_render_within_fails_clearly_when_nothing_fits() -> None:
    template = TextTemplate("{context} {question}")
    with pytest.raises(InvalidInputError, match="budget"):
        template.render_within(
            {"context": "x", "question": "y" * 50}, TokenBudget(ByteTokenizer(), 10), trim="context"
        )
    with pytest.raises(InvalidInputError, match="not a variable"):
        template.render_within(
            {"context": "x", "question": "y"}, TokenBudget(ByteTokenizer(), 10), trim="nope"
        )


def test_budget_is_validated() -> None:
    with pytest.raises(ConfigError):
        TokenBudget(ByteTokenizer(), 0)
    with pytest.raises(ConfigError):
        TokenBudget("not a tokenizer", 10)  # type: ignore[arg-type]


# ------------------------------------------------------------------ few-shot

EXAMPLES = [
    {"q": "aaa", "a": "1"},
    {"q": "aab", "a": "2"},
    {"q": "bbb", "a": "3"},
    {"q": "ccc", "a": "4"},
]


def few_shot(selector: object = None, budget: TokenBudget | None = None) -> FewShotTemplate:
    return FewShotTemplate(
        prefix="Count.",
        example="Q: {q} A: {a}",
        suffix="Q: {question} A:",
        selector=selector,  # type: ignore[arg-type]
        budget=budget,
    )


def test_zero_one_and_few_shot() -> None:
    assert few_shot().render({"question": "x"}) == "Count.\n\nQ: x A:"
    one = few_shot(FixedExamples(EXAMPLES[:1])).render({"question": "x"})
    assert one == "Count.\n\nQ: aaa A: 1\n\nQ: x A:"
    assert few_shot(FixedExamples(EXAMPLES)).render({"question": "x"}).count("Q:") == 5


def test_examples_are_inserted_literally() -> None:
    text = few_shot(FixedExamples([{"q": "{question}", "a": "{{a}}"}])).render({"question": "real"})
    assert "Q: {question} A: {{a}}" in text
    assert text.endswith("Q: real A:")


def test_budget_drops_least_useful_examples_first() -> None:
    budget = TokenBudget(ByteTokenizer(), 40)
    text = few_shot(FixedExamples(EXAMPLES), budget).render({"question": "x"})
    assert budget.fits(text)
    assert "Q: aaa" in text
    assert "Q: ccc" not in text
    with pytest.raises(InvalidInputError, match="no examples"):
        few_shot(FixedExamples(EXAMPLES), TokenBudget(ByteTokenizer(), 5)).render({"question": "x"})


def test_similarity_selector_picks_the_nearest_examples() -> None:
    selector = SimilarityExampleSelector(EXAMPLES, Letters(), k=2, example_keys=["q"])
    first = selector.select({"question": "bbbb"})
    assert [e["q"] for e in first] == ["bbb", "aab"]
    selector.select({"question": "ccc"})  # another question in between leaves nothing behind
    assert selector.select({"question": "bbbb"}) == first


def test_similarity_selector_works_with_a_genarch_feature_extractor() -> None:
    lexical = pytest.importorskip("genarch.features.lexical")
    extractor = lexical.HashingVectorizer()
    pool = [
        {"q": "how do I sort a list"},
        {"q": "open a file for reading"},
        {"q": "sort a dictionary by value"},
    ]
    selector = SimilarityExampleSelector(pool, extractor, k=1)
    assert selector.select({"question": "read a file"}) == [{"q": "open a file for reading"}]


def test_mmr_prefers_diverse_examples() -> None:
    relevant_only = MMRExampleSelector(EXAMPLES, Letters(), k=2, diversity=0.0, example_keys=["q"])
    diverse = MMRExampleSelector(EXAMPLES, Letters(), k=2, diversity=0.7, example_keys=["q"])
    # "aaa" is the runner-up by similarity but nearly a copy of "aab"; MMR picks "ccc".
    assert [e["q"] for e in relevant_only.select({"question": "aaab"})] == ["aab", "aaa"]
    assert [e["q"] for e in diverse.select({"question": "aaab"})] == ["aab", "ccc"]


def test_mmr_order_rejects_mismatched_shapes() -> None:
    with pytest.raises(InvalidInputError):
        mmr_order(torch.zeros(3), torch.zeros(2, 4), 1)


def test_length_budget_selector_keeps_leading_examples_that_fit() -> None:
    selector = LengthBudgetSelector(
        EXAMPLES, TextTemplate("Q: {q} A: {a}"), TokenBudget(ByteTokenizer(), 25)
    )
    assert selector.select({}) == EXAMPLES[:2]  # 11 + 2 + 11 bytes


def test_length_budget_selector_wraps_another_selector() -> None:
    inner = SimilarityExampleSelector(EXAMPLES, Letters(), k=4, example_keys=["q"])
    selector = LengthBudgetSelector(
        inner, TextTemplate("Q: {q} A: {a}"), TokenBudget(ByteTokenizer(), 11)
    )
    assert selector.select({"question": "ccc"}) == [{"q": "ccc", "a": "4"}]


@pytest.mark.parametrize(
    "make",
    [
        lambda: FixedExamples("not a list"),  # type: ignore[arg-type]
        lambda: FixedExamples([{"q": object()}]),
        lambda: SimilarityExampleSelector(EXAMPLES, "not an extractor"),  # type: ignore[arg-type]
        lambda: SimilarityExampleSelector(EXAMPLES, Letters(), k=0),
        lambda: MMRExampleSelector(EXAMPLES, Letters(), diversity=2.0),
        lambda: SimilarityExampleSelector(EXAMPLES, Letters(), example_keys=["missing"]),
    ],
)
def test_bad_selector_arguments_raise_genarch_errors(make: object) -> None:
    with pytest.raises(GenarchError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.render({"x": 10**5000}),
        lambda t: t.partial({"x": 10**5000}),
        lambda t: t.render_within({"x": 10**5000}, TokenBudget(ByteTokenizer(), 50), trim="x"),
    ],
    ids=["render", "partial", "render_within"],
)
def test_a_value_without_text_is_invalid_input_naming_the_variable(call) -> None:
    with pytest.raises(InvalidInputError, match=r"variable 'x' \(an int of \d+ bits\)"):
        call(TextTemplate("{x}"))


def test_a_value_whose_str_fails_is_invalid_input_naming_the_variable() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with pytest.raises(InvalidInputError, match=r"variable 'x' \(Broken\).*no text"):
        TextTemplate("{x}").partial({"x": Broken()})
