"""QualityFilter: each rule drops what it should and says why."""

from __future__ import annotations

import pytest

from genarch import ConfigError, Document, Pipeline
from genarch.data import QualityFilter, TextCleaner, python_docs
from genarch.testing import data_processor_checks, parametrize_with_checks

GOOD = Document(
    id="good", text="Python lists are mutable sequences, typically used to store collections."
)
CASES = {
    "too_short": Document(id="short", text="Too short."),
    "few_words_with_letters": Document(id="numbers", text="1 2 3 4 5 6 7 8 9 10 11 12 a b"),
    "repeated_lines": Document(
        id="lines",
        text="Subscribe now to read more\nand more text\n" + "Subscribe now to read more\n" * 3,
    ),
    "repeated_2grams": Document(id="ngrams", text="click here " * 40),
    "line_too_long": Document(id="long", text=" ".join(f"word{i}" for i in range(2000))),
}


@parametrize_with_checks(data_processor_checks(QualityFilter(), [GOOD, *CASES.values()]))
def test_quality_filter_conforms(check):
    check()


@pytest.mark.parametrize(("reason", "document"), CASES.items())
def test_each_rule_drops_its_case_with_the_reason(reason, document):
    quality = QualityFilter(max_line_characters=10_000)
    verdict = quality.explain(document)
    assert not verdict.kept
    assert verdict.reasons[0] == reason


def test_good_text_is_kept():
    assert QualityFilter().explain(GOOD).kept


def test_rules_can_be_switched_off():
    assert QualityFilter(min_words=None).explain(CASES["too_short"]).kept


def test_trace_counts_drops_by_first_reason():
    run = Pipeline([("quality", QualityFilter(max_line_characters=10_000))]).run(
        [GOOD, *CASES.values()]
    )
    assert [d.id for d in run] == ["good"]
    assert run.trace.stage("quality").counters == {f"dropped:{r}": 1 for r in CASES}


def test_python_docs_mostly_pass():
    docs = list(TextCleaner().process(python_docs()))
    kept = list(QualityFilter().process(docs))
    assert len(kept) >= 0.9 * len(docs)


def test_bad_thresholds_are_config_errors():
    with pytest.raises(ConfigError, match="min_alpha_word_fraction"):
        QualityFilter(min_alpha_word_fraction=1.5)


# ------------------------------------------------------------------ tables are content

TABLE_TOPICS = ("operator-summary", "typesseq-mutable")  # operator precedence, s[i] = x, ...


@pytest.mark.parametrize("topic", TABLE_TOPICS)
@pytest.mark.parametrize("cleaned", [False, True], ids=["raw", "cleaned"])
def test_reference_pages_made_of_tables_are_kept(topic, cleaned):
    (document,) = [d for d in python_docs() if d.id == topic]
    if cleaned:
        (document,) = TextCleaner().process([document])
    verdict = QualityFilter().explain(document)
    assert verdict.kept, verdict.reasons


def test_every_python_docs_topic_is_kept():
    docs = list(TextCleaner().process(python_docs()))
    assert [d.id for d in docs if not QualityFilter().explain(d).kept] == []


RULE = "+------------+-----------+\n"
BOILERPLATE_TABLES = {
    "repeated rows": "Deals\n" + (RULE + "| click here | buy now   |\n") * 20,
    "one phrase in every cell": "| Name | Value |\n|------|-------|\n"
    + "".join(f"| buy now cheap | buy now cheap {i} |\n" for i in range(20)),
    "navigation bar": "Menu\n" + "| Home | About | Contact |\n|---|---|---|\n" * 10,
    "only rules": RULE * 500,
    "box-drawing frame": ("\u250c\u2500\u2500\u2500\u2510\n\u2502 spam spam \u2502\n") * 30,
}


@pytest.mark.parametrize("name", sorted(BOILERPLATE_TABLES))
def test_tables_of_boilerplate_are_still_dropped(name):
    verdict = QualityFilter().explain(Document(id=name, text=BOILERPLATE_TABLES[name]))
    assert not verdict.kept


def test_ruled_lines_are_not_lines_and_cell_borders_are_not_words():
    from genarch.data.quality import measure_quality

    table = "Intro line here.\n" + (RULE + "| alpha      | beta      |\n") + RULE * 3
    measures = measure_quality(table)
    assert measures.words == 5  # "Intro line here." and the two cells
    assert measures.duplicate_line_fraction == 0.0
