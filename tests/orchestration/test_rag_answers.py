"""The RAG answers' question set, its scoring, and the quickstart assistant's figures on it."""

from __future__ import annotations

import pytest
import torch

from genarch.data import python_docs
from genarch.errors import ConfigError, InvalidInputError, NotFoundError
from genarch.features import HashingVectorizer, QueryAdapter
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.citations import (
    Answer,
    Citation,
    NotFound,
    Source,
    Statement,
    light_stem,
    term_coverage,
)
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.quickstart import (
    OPERATOR_TOKEN_PATTERN,
    python_docs_adapter,
    quickstart_rag,
)
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    adapter_examples,
    answer_outcome,
    evaluate_rag,
    load_questions,
    quote_spans,
    verify_questions,
)
from genarch.orchestration.retrievers import TitledRetriever, document_titles
from genarch.schemas import Chunk, Document
from orchestration.conftest import quotes_this_python


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return python_docs()


@pytest.fixture(scope="module")
def questions() -> list[LabelledQuestion]:
    return load_questions(name="rag")


def test_the_rag_set_has_100_answerable_and_30_unanswerable_questions(questions):
    assert sum(q.answerable for q in questions) >= 100
    assert sum(not q.answerable for q in questions) >= 30
    assert len({q.id for q in questions}) == len(questions)


@quotes_this_python
def test_every_answer_span_occurs_in_its_topics(questions, documents):
    verify_questions(questions, documents)  # raises, naming each question that fails


def test_the_rag_set_is_not_the_retrieval_set(questions):
    asked = {q.question for q in load_questions()}
    assert not asked & {q.question for q in questions}


def test_an_unknown_question_set_name_is_refused():
    with pytest.raises(InvalidInputError, match="name must be one of"):
        load_questions(name="nope")


def test_quote_spans_match_across_line_breaks():
    assert quote_spans("a b", "a\n b, a b") == [(0, 4), (6, 9)]
    assert quote_spans("", "text") == []


def _answer(document_id: str, start: int, end: int, text: str) -> Answer:
    citation = Citation(
        source=1, chunk_id=f"{document_id}#0", document_id=document_id,
        start=start, end=end, quote=text[start:end],
    )  # fmt: skip
    statement = Statement(text=citation.quote, citations=(citation,))
    return Answer(question="q?", text=citation.quote, statements=(statement,), sources=())


def test_an_answer_is_right_only_with_the_topic_and_an_overlapping_span():
    text = "First sentence here. The answer is forty-two. Last one."
    question = LabelledQuestion(id="a1", question="q?", topics=("doc",), quote="is forty-two")
    texts = {"doc": text, "other": text}
    assert answer_outcome(_answer("doc", 21, 45, text), question, texts) == "right"
    assert answer_outcome(_answer("doc", 0, 20, text), question, texts) == "no_overlap"
    assert answer_outcome(_answer("other", 21, 45, text), question, texts) == "wrong_topic"
    declined = NotFound(question="q?", reason="low_coverage", detail="")
    assert answer_outcome(declined, question, texts) == "declined"


# ------------------------------------------------------------------ retrieval with titles


def _chunk(document_id: str, text: str, number: int = 0) -> Chunk:
    return Chunk(
        id=f"{document_id}#{number}", document_id=document_id, text=text, start=0, end=len(text)
    )


def test_document_titles_are_first_lines_without_quotes():
    documents = [
        Document(id="pass", text='The "pass" statement\n****\n\nIt does nothing.'),
        Document(id="blank", text="\n\n  Code Objects  \nbody"),
    ]
    assert document_titles(documents) == {"pass": "The pass statement", "blank": "Code Objects"}


def test_a_titled_retriever_finds_chunks_by_their_topic_title_and_returns_them_unchanged():
    chunks = [
        _chunk("bitwise", "The ^ operator yields the exclusive or of its arguments."),
        _chunk("power", "The power operator binds more tightly than unary operators."),
    ]
    titles = {"bitwise": "Binary bitwise operations", "power": "The power operator"}
    titled = TitledRetriever(BM25Retriever(stopwords=()), titles).fit(chunks)
    [best] = titled.retrieve("Which bitwise operations exist?", k=1)
    assert best.chunk == chunks[0]  # the original text and span, not the titled copy
    plain = BM25Retriever(stopwords=()).fit(chunks)
    assert plain.retrieve("Which bitwise operations exist?", k=1) == []  # no shared word


def test_operator_symbols_are_tokens_of_the_quickstart_bm25():
    chunks = [_chunk("bitwise", 'The "^" operator yields XOR.'), _chunk("and", "And yields.")]
    bm25 = BM25Retriever(stopwords=(), token_pattern=OPERATOR_TOKEN_PATTERN).fit(chunks)
    assert [r.chunk.id for r in bm25.retrieve("What does ^ do?", k=1)] == ["bitwise#0"]


def test_a_titled_retriever_refuses_bad_arguments_and_foreign_chunks():
    with pytest.raises(ConfigError, match="fit\\(\\) and retrieve\\(\\)"):
        TitledRetriever(object(), {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mapping of str to str"):
        TitledRetriever(BM25Retriever(), {"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="same chunk id"):
        TitledRetriever(BM25Retriever(), {}).fit([_chunk("a", "x y"), _chunk("a", "x z")])

    class Stranger(BM25Retriever):  # returns a chunk that was never indexed
        def retrieve(self, query, k):
            return [
                r.model_copy(update={"chunk": _chunk("other", "zz")})
                for r in super().retrieve(query, k)
            ]

    titled = TitledRetriever(Stranger(), {}).fit([_chunk("a", "word here")])
    with pytest.raises(NotFoundError, match="not indexed"):
        titled.retrieve("word", k=1)


def test_light_stem_folds_word_forms_and_leaves_code_alone():
    assert {light_stem(w) for w in ("float", "floating", "floats")} == {"float"}
    assert {light_stem(w) for w in ("define", "defines", "defined")} == {"defin"}
    assert [light_stem(w) for w in ("class", "is", "__init__", "0x1f")] == [
        "class", "is", "__init__", "0x1f",
    ]  # fmt: skip


def test_a_stemming_bm25_finds_other_word_forms_of_the_question():
    chunks = [
        _chunk("floating", "Floating point literals may contain underscores."),
        _chunk("strings", "String literal concatenation is allowed."),
    ]
    stemmed = BM25Retriever(stopwords=(), stem=True).fit(chunks)
    assert stemmed.tokenize("Floats, defined") == ["float", "defin"]
    [best, *_] = stemmed.retrieve("Can a float have underscores?", k=2)
    assert best.chunk.id == "floating#0"
    plain = BM25Retriever(stopwords=()).fit(chunks)
    assert [r.chunk.id for r in plain.retrieve("float", k=2)] == []  # no shared token


def test_coverage_counts_other_word_forms_of_the_question():
    assert term_coverage("What does ^ compute?", ["The result is computed."]) == 1.0
    assert term_coverage("What does ^ compute?", ["The result is known."]) == 0.0


def test_operator_symbols_in_the_question_choose_the_sentence():
    sources = _sources("The & operator yields the bitwise AND.", "The ^ operator yields XOR.")
    [statement] = ExtractiveGenerator(max_sentences=1).compose("What does ^ yield?", sources)
    assert statement.text == "The ^ operator yields XOR."
    # markup such as *emphasis* and hyphens are not operators
    [other] = ExtractiveGenerator(max_sentences=1).compose(
        "What does the * operator yield?",
        _sources("A *bold* word-list yields.", "The * operator yields."),
    )
    assert other.text == "The * operator yields."


def test_an_answer_that_ends_in_a_colon_shows_what_it_introduces():
    text = (
        'The "from" form uses a slightly more complex process:\n\n'
        '1. find the module specified in the "from" clause, loading\n   it if necessary.\n\n'
        '2. for each identifier of the "from" clause, look it up in the module and bind '
        "the name in the local namespace."
    )
    question = 'What process does the "from" form of import use?'
    generator = ExtractiveGenerator(min_support=0.0, relative_support=0.0)
    [first, second] = generator.compose(question, _sources(text))
    assert first.text == (
        'The "from" form uses a slightly more complex process: 1. find the module specified '
        'in the "from" clause, loading it if necessary.'
    )
    citation = first.citations[0]
    assert text[citation.start : citation.end] == citation.quote
    # the next answer is not the first item again ("1." and "2." are no sentences)
    assert second.text.startswith('for each identifier of the "from" clause')


def test_what_a_colon_introduces_is_taken_only_while_it_is_short():
    long_item = "Short first sentence. " + "Then words " * 40 + "end."
    too_long = "Words " * 80 + "end."
    question = "Which process does it use?"
    for following, expected in (
        (long_item, "It uses this process: Short first sentence."),
        (too_long, "It uses this process:"),
        ("", "It uses this process:"),
    ):
        text = f"It uses this process:\n\n{following}".strip()
        [statement] = ExtractiveGenerator(max_sentences=1).compose(question, _sources(text))
        assert statement.text == expected


def test_an_answer_that_refers_back_shows_what_it_refers_to():
    text = (
        'A cell object has the attribute "cell_contents". '
        "This can be used to get the value of the cell.\n\n"
        "Unrelated words here.\n\n"
        "This is a new paragraph about the value of the cell."
    )
    generator = ExtractiveGenerator(max_sentences=2, min_support=0.0, relative_support=0.0)
    question = "How do I get the value of the cell?"
    first, second = generator.compose(question, _sources(text))
    assert first.text == (
        'A cell object has the attribute "cell_contents". '
        "This can be used to get the value of the cell."
    )
    assert first.citations[0].quote == text[: first.citations[0].end]
    # not across a blank line: the other paragraph's first sentence stands alone
    assert second.text == "This is a new paragraph about the value of the cell."
    # nor onto a heading or code line, nor onto a sentence already in the answer
    code = "x = cell.get(); y = x + 1. It returns the value of the cell."
    [alone] = generator.compose(question, _sources(code))
    assert alone.text == "It returns the value of the cell."
    both = 'The cell holds "cell_contents" value. It gives the value of the cell.'
    picks = ExtractiveGenerator(max_sentences=2, min_support=0.0, relative_support=0.0).select(
        "What value does the cell hold?", [both]
    )
    assert sorted((p.start, p.end) for p in picks) == [(0, 37), (38, len(both))]


def test_code_that_reads_like_a_sentence_is_no_answer():
    # The lines of an interactive example, a function header and a call
    # standing alone end in "." or ")" and are mostly letters, but are code.
    example = (
        "   >>> def f():\n"
        "   ...     try:\n"
        "   ...         return 'try'\n"
        "   ...     finally:\n"
        "   ...         return 'finally'\n"
        "   ...\n"
        "   >>> f()\n"
        "   'finally'\n\n"
        "   def handler(self, value): print('value is set, finally.')\n\n"
        "   print('Case 4, I return finally!')\n\n"
        'A "return" in the "finally" clause is the last one executed, so it wins.'
    )
    generator = ExtractiveGenerator(max_sentences=3, min_support=0.0, relative_support=0.0)
    statements = generator.compose("Which return wins, try or finally?", _sources(example))
    assert [s.text for s in statements] == [
        'A "return" in the "finally" clause is the last one executed, so it wins.'
    ]
    # a parenthesised remark or a sentence that names a call is still prose
    prose = '(See the "print()" function.) The code calls "print(value)" to show the value.'
    assert len(generator.compose("How is the value shown by print?", _sources(prose))) == 2


# ------------------------------------------------------------------ semantic answer selection


class Topics:
    """A toy sentence encoder: which of a few topics' words a text mentions; counts its calls."""

    dim = 3
    groups = (
        ("null", "nothing", "placeholder", "empty"),
        ("loop", "repeat", "iterate"),
        ("zebra",),
    )

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def extract(self, texts):
        self.embedded.extend(texts)
        rows = [[float(any(w in t.lower() for w in group)) for group in self.groups] for t in texts]
        return torch.tensor(rows) + 1e-3


def _sources(*texts: str) -> list[Source]:
    return [
        Source(number=n, score=1.0, chunk=_chunk(f"d{n}", text)) for n, text in enumerate(texts, 1)
    ]


SOURCES = _sources(
    "The pass statement is a statement. It is a null operation that does nothing.",
    "A while statement is a statement that can repeat a block.",
)


def test_the_encoder_picks_the_sentence_that_answers_in_other_words():
    question = "Which statement is an empty placeholder?"
    lexical = ExtractiveGenerator(max_sentences=1).compose(question, SOURCES)
    semantic = ExtractiveGenerator(max_sentences=1, semantic_weight=0.7, encoder=Topics())
    [statement] = semantic.compose(question, SOURCES)
    # the sentence that answers ("It is a null operation"), with the one it refers to
    assert statement.text == (
        "The pass statement is a statement. It is a null operation that does nothing."
    )
    assert [s.text for s in lexical] != [statement.text]  # words alone pick another sentence
    citation = statement.citations[0]
    assert SOURCES[0].chunk.text[citation.start : citation.end] == citation.quote


def test_no_answer_when_no_sentence_scores_well_enough():
    generator = ExtractiveGenerator(min_confidence=0.65, encoder=Topics())
    assert generator.compose("Is a zebra a statement?", SOURCES) == []
    assert generator.compose("Which statement is an empty placeholder?", SOURCES) != []


class Toward:
    """A toy question encoder that reads every question as about one group of Topics."""

    dim = 3

    def __init__(self, group: int) -> None:
        self.group = group

    def extract(self, texts):
        vectors = torch.full((len(texts), 3), 1e-3)
        vectors[:, self.group] = 1.0
        return vectors


def test_a_question_encoder_ranks_the_sentences_but_the_encoder_decides_whether_to_answer():
    question = "Which statement is an empty placeholder?"
    texts = [source.chunk.text for source in SOURCES]
    plain = ExtractiveGenerator(max_sentences=1, encoder=Topics())
    adapted = ExtractiveGenerator(max_sentences=1, encoder=Topics(), question_encoder=Toward(1))
    [by_meaning] = plain.compose(question, SOURCES)
    [moved] = adapted.compose(question, SOURCES)
    assert "null operation" in by_meaning.text
    assert moved.text == "A while statement is a statement that can repeat a block."
    # whether the sources answer is decided on the encoder's own question vector
    confidence = plain.confidence(question, texts)
    assert confidence is not None
    assert adapted.confidence(question, texts) == confidence
    for min_confidence, answered in ((confidence - 0.01, True), (confidence + 0.01, False)):
        gated = ExtractiveGenerator(
            max_sentences=1,
            encoder=Topics(),
            question_encoder=Toward(1),
            min_confidence=min_confidence,
        )
        assert bool(gated.compose(question, SOURCES)) is answered


def test_a_question_encoder_must_fit_the_encoder():
    with pytest.raises(InvalidInputError, match="same dim"):
        ExtractiveGenerator(encoder=Topics(), question_encoder=HashingVectorizer(dim=8))
    with pytest.raises(InvalidInputError, match="same dim"):
        ExtractiveGenerator(question_encoder=Toward(0))
    with pytest.raises(InvalidInputError, match="question_encoder to be a FeatureExtractor"):
        ExtractiveGenerator(encoder=Topics(), question_encoder=object())  # type: ignore[arg-type]


def test_the_candidates_are_the_sentences_as_the_encoder_reads_them():
    generator = ExtractiveGenerator(
        encoder=Topics(), titles={"d1": "The pass statement"}, title_in_context=True
    )
    texts = [source.chunk.text for source in SOURCES]
    candidates = generator.candidates(texts, document_ids=["d1", "d2"])
    assert [(i, texts[i][start:end]) for i, start, end, _ in candidates] == [
        (0, "The pass statement is a statement."),
        (0, "It is a null operation that does nothing."),
        (1, "A while statement is a statement that can repeat a block."),
    ]
    assert candidates[0][3] == "The pass statement: The pass statement is a statement."
    assert candidates[2][3] == "A while statement is a statement that can repeat a block."


def test_each_sentence_is_embedded_once_per_generator():
    encoder = Topics()
    generator = ExtractiveGenerator(encoder=encoder)
    generator.compose("Which statement repeats?", SOURCES)
    first = len(encoder.embedded)
    generator.compose("Which statement repeats?", SOURCES)
    assert len(encoder.embedded) == first  # the question and sentences come from the cache
    assert len(set(encoder.embedded)) == len(encoder.embedded)


def test_the_title_prior_prefers_the_topic_the_question_is_about() -> None:
    # The same sentence in two topics: only the topic titles tell them apart.
    sentence = "This statement is described here."
    sources = [
        Source(number=1, score=1.0, chunk=_chunk("loops", sentence)),
        Source(number=2, score=1.0, chunk=_chunk("pass", sentence)),
    ]
    titles = {"loops": "Statements that repeat", "pass": "The empty placeholder statement"}
    question = "Which statement is an empty placeholder?"
    plain = ExtractiveGenerator(max_sentences=1, encoder=Topics(), titles=titles)
    [first] = plain.compose(question, sources)
    assert first.citations[0].document_id == "loops"  # no prior: the better-ranked source
    prior = ExtractiveGenerator(max_sentences=1, title_weight=0.5, encoder=Topics(), titles=titles)
    [chosen] = prior.compose(question, sources)
    assert chosen.citations[0].document_id == "pass"


def test_the_shortlist_embeds_only_the_sentences_with_the_most_question_words() -> None:
    sources = _sources(
        "A while statement repeats a block. Zebras are striped.",
        "The loop statement can repeat. Nothing here at all.",
    )
    question = "Which statement repeats a block?"
    encoder = Topics()
    generator = ExtractiveGenerator(max_sentences=2, shortlist=2, encoder=encoder)
    statements = generator.compose(question, sources)
    # the question and the two sentences sharing the most of its words: no others
    assert sorted(encoder.embedded) == sorted(
        [question, "A while statement repeats a block.", "The loop statement can repeat."]
    )
    assert {s.text for s in statements} <= {
        "A while statement repeats a block.", "The loop statement can repeat.",
    }  # fmt: skip
    everything = Topics()
    ExtractiveGenerator(encoder=everything).compose(question, sources)
    assert len(everything.embedded) == 5  # without a shortlist: the question and 4 sentences


def test_title_in_context_reads_each_sentence_with_its_topic_title() -> None:
    encoder = Topics()
    titles = {"d1": "The pass statement"}
    generator = ExtractiveGenerator(title_in_context=True, encoder=encoder, titles=titles)
    generator.compose("Which statement is an empty placeholder?", SOURCES)
    assert "The pass statement: It is a null operation that does nothing." in encoder.embedded
    assert "A while statement is a statement that can repeat a block." in encoder.embedded
    # the title's words count as the sentence's: "It ..." answers for "pass"
    sources = _sources("It does zebra things.", "A zebra statement runs.")
    question = "What does the pass statement do?"
    with_title = ExtractiveGenerator(
        max_sentences=1, semantic_weight=0.0, title_in_context=True, encoder=Topics(), titles=titles
    )
    assert with_title.compose(question, sources)[0].text == "It does zebra things."
    without = ExtractiveGenerator(
        max_sentences=1, semantic_weight=0.0, encoder=Topics(), titles=titles
    )
    assert without.compose(question, sources)[0].text == "A zebra statement runs."


# A method's entry: its signature, then paragraphs indented under it.
ENTRY = (
    "object.__zebra__(self)\n\n"
    "   Called to loop over stripes.\n\n"
    "   This method should return nothing.\n\n"
    "Plain text follows the entry."
)


def test_a_signature_describes_every_sentence_indented_under_it() -> None:
    encoder = Topics()
    ExtractiveGenerator(heading_scope="block", encoder=encoder).compose(
        "What should __zebra__ return?", _sources(ENTRY)
    )
    assert "object.__zebra__(self) This method should return nothing." in encoder.embedded
    assert "Plain text follows the entry." in encoder.embedded  # not indented under it
    first_only = Topics()
    ExtractiveGenerator(encoder=first_only).compose(
        "What should __zebra__ return?", _sources(ENTRY)
    )
    assert "This method should return nothing." in first_only.embedded
    # its words count as the sentence's: only there do both question words meet
    question = "What should __zebra__ return?"
    [block] = ExtractiveGenerator(max_sentences=1, heading_scope="block").compose(
        question, _sources(ENTRY)
    )
    assert block.text == "This method should return nothing."
    [first] = ExtractiveGenerator(max_sentences=1).compose(question, _sources(ENTRY))
    assert first.text == "Called to loop over stripes."


def test_an_indented_grammar_rule_is_no_heading_of_the_paragraph_after_it() -> None:
    text = '   loop_stmt ::= "zebra" suite\n\nThe loop statement repeats its suite.'
    block, first = Topics(), Topics()
    ExtractiveGenerator(heading_scope="block", encoder=block).compose(
        "What does the loop statement repeat?", _sources(text)
    )
    assert "The loop statement repeats its suite." in block.embedded
    ExtractiveGenerator(encoder=first).compose(
        "What does the loop statement repeat?", _sources(text)
    )
    assert 'loop_stmt ::= "zebra" suite The loop statement repeats its suite.' in first.embedded


def test_confidence_is_what_min_confidence_is_compared_with() -> None:
    question = "Which statement is an empty placeholder?"
    texts = [source.chunk.text for source in SOURCES]
    score = ExtractiveGenerator(encoder=Topics()).confidence(question, texts)
    assert score is not None
    assert ExtractiveGenerator(min_confidence=score - 1e-6, encoder=Topics()).compose(
        question, SOURCES
    )
    assert not ExtractiveGenerator(min_confidence=score + 1e-6, encoder=Topics()).compose(
        question, SOURCES
    )
    assert ExtractiveGenerator(encoder=Topics()).confidence("the of and", texts) is None


def test_titles_and_document_ids_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="titles to be a mapping"):
        ExtractiveGenerator(titles={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="one document id per text"):
        ExtractiveGenerator().select("q?", ["a b", "c d"], document_ids=["a"])


def test_an_encoder_without_extract_is_refused():
    with pytest.raises(InvalidInputError, match="encoder to be a FeatureExtractor"):
        ExtractiveGenerator(encoder=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="'minilm', 'none' or a FeatureExtractor"):
        quickstart_rag([], encoder="bert")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="retrieval 'auto', 'bm25' or 'hybrid'"):
        quickstart_rag([], retrieval="dense")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs a sentence encoder"):
        quickstart_rag([], encoder="none", retrieval="hybrid")


# ------------------------------------------------------------------ figures on the held-out half


def _held_out(questions: list[LabelledQuestion]) -> list[LabelledQuestion]:
    """The held-out half (even ids) of the first 62 answerable and 20 unanswerable
    questions, as when the floors were first set (41 questions; the whole held-out
    half has 53, and each costs embeddings). ``benchmarks/eval_rag.py`` reports all."""
    first = {"a": 62, "n": 20}
    return [q for q in questions if int(q.id[1:]) % 2 == 0 and int(q.id[1:]) <= first[q.id[0]]]


@quotes_this_python
def test_the_quickstart_assistant_answers_the_held_out_half(questions, documents, minilm):
    # Figures measured with `python benchmarks/eval_rag.py` on the held-out half
    # (even ids; the settings were chosen on the odd ones); the asserted floors
    # leave a margin of about two questions.
    report = evaluate_rag(
        quickstart_rag(documents, encoder=minilm), _held_out(questions), documents
    )
    assert report.spans_exact == 1.0
    assert report.answer_accuracy >= ACCURACY_FLOOR
    assert report.decline_recall >= DECLINE_RECALL_FLOOR
    assert report.decline_precision >= DECLINE_PRECISION_FLOOR


@quotes_this_python
def test_without_the_embeddings_extra_the_quickstart_still_answers(questions, documents):
    rag = quickstart_rag(documents, encoder="none")
    report = evaluate_rag(rag, _held_out(questions), documents)
    assert report.spans_exact == 1.0
    assert report.answer_accuracy >= LEXICAL_ACCURACY_FLOOR
    assert report.decline_recall >= LEXICAL_DECLINE_RECALL_FLOOR


def test_an_adapter_needs_a_sentence_encoder_and_must_be_one():
    docs = [Document(id="d", text="A statement.")]
    with pytest.raises(InvalidInputError, match="'python-docs', a QueryAdapter or None"):
        quickstart_rag(docs, adapter="python")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs a sentence encoder"):
        quickstart_rag(docs, encoder="none", adapter="python-docs")
    encoder = HashingVectorizer(dim=8)
    other = QueryAdapter(HashingVectorizer(dim=4), torch.zeros(4, 1), torch.zeros(1, 4))
    with pytest.raises(InvalidInputError, match="4-dim question vectors, the encoder 8-dim"):
        quickstart_rag(docs, encoder=encoder, adapter=other)
    with pytest.raises(InvalidInputError, match="fitted on another encoder"):
        quickstart_rag(docs, encoder=encoder, adapter="python-docs")


def test_the_python_docs_adapter_is_for_minilm_only(minilm):
    adapter = python_docs_adapter(minilm)
    assert (adapter.dim, adapter.rank) == (384, 32)
    with pytest.raises(InvalidInputError, match="fitted on another encoder"):
        python_docs_adapter(HashingVectorizer(dim=384))


def test_adapter_examples_label_the_candidates_that_hold_the_quote(documents):
    docs = [d for d in documents if d.id in {"pass", "break", "continue"}]
    rag = quickstart_rag(docs, encoder="none")
    question = LabelledQuestion(
        id="a1",
        question="Which statement is a null operation?",
        topics=("pass",),
        quote='"pass" is a null operation',
    )
    unanswerable = LabelledQuestion(id="n1", question="How do I install pip?")
    [example] = adapter_examples(rag, [question, unanswerable], docs)
    assert example.question == question.question
    assert [example.candidates[i] for i in example.answers] == [
        '"pass" is a null operation — when it is executed, nothing happens.'
    ]
    with pytest.raises(InvalidInputError, match="a RAG with an ExtractiveGenerator"):
        adapter_examples(rag.retriever, [question], docs)  # type: ignore[arg-type]


@quotes_this_python
def test_the_adapter_and_gate_answer_questions_they_never_saw(
    questions, documents, minilm, tmp_path
):
    # The test batches (fresh_6, 7, 8, 17, 18, 25, 26: 207 answerable questions
    # asked as users do, 68 unanswerable) are in none of the adapter's or the
    # gate's examples. Measured (benchmarks/eval_rag.py): 73/207 right plain,
    # 113/207 with the adapter (61/68 declined), 110/207 with the adapter and the
    # gate (58/68 declined); the floors leave five or six questions of margin.
    batches = {"a": [(227, 316), (557, 615), (793, 850)], "n": [(73, 102), (183, 202), (261, 278)]}
    unseen = [
        q
        for q in questions
        if any(first <= int(q.id[1:]) <= last for first, last in batches[q.id[0]])
    ]
    assert (sum(q.answerable for q in unseen), sum(not q.answerable for q in unseen)) == (207, 68)
    from genarch.features import CachedExtractor

    with CachedExtractor(minilm, tmp_path / "vectors.sqlite") as encoder:  # one corpus embedding
        plain, adapted, gated = (
            evaluate_rag(quickstart_rag(documents, encoder=encoder, **options), unseen, documents)
            for options in (
                {},
                {"adapter": "python-docs"},
                {"adapter": "python-docs", "gate": "python-docs"},
            )
        )
    assert adapted.spans_exact == gated.spans_exact == 1.0
    assert adapted.answer_accuracy >= ADAPTED_ACCURACY_FLOOR
    assert adapted.answer_accuracy >= plain.answer_accuracy + ADAPTER_GAIN_FLOOR
    assert adapted.decline_recall >= ADAPTED_DECLINE_RECALL_FLOOR
    assert gated.answer_accuracy >= GATED_ACCURACY_FLOOR
    assert gated.decline_recall >= GATED_DECLINE_RECALL_FLOOR


ADAPTED_ACCURACY_FLOOR = 0.52
ADAPTER_GAIN_FLOOR = 0.15
ADAPTED_DECLINE_RECALL_FLOOR = 0.82
GATED_ACCURACY_FLOOR = 0.5
GATED_DECLINE_RECALL_FLOOR = 0.76


# measured on that subset (31 answerable, 10 unanswerable questions): MiniLM 27/31
# right, 10/10 declined, every decline right; words only 23/31 right, 6/10 declined.
# The floors leave a margin of about two questions. (On the whole held-out half,
# 41 + 12 questions: MiniLM 34/41 right, 12/12 declined; words only 30/41, 8/12.)
ACCURACY_FLOOR = 0.83
DECLINE_RECALL_FLOOR = 0.8
DECLINE_PRECISION_FLOOR = 0.8
LEXICAL_ACCURACY_FLOOR = 0.67
LEXICAL_DECLINE_RECALL_FLOOR = 0.4


def test_without_any_indentation_a_signature_describes_the_sentence_after_it() -> None:
    # Documents cleaned with their indentation gone (TextCleaner's default): blocks
    # cannot be seen, so "block" falls back to "sentence" (a regression found by the
    # CLI test, which cleaned them so then: "What does str.partition return?" was declined).
    flat = "\n".join(line.strip() for line in ENTRY.splitlines())
    assert flat != ENTRY
    question = "What should __zebra__ return?"
    encoder = Topics()
    ExtractiveGenerator(heading_scope="block", encoder=encoder).compose(question, _sources(flat))
    assert "object.__zebra__(self) Called to loop over stripes." in encoder.embedded
    [block] = ExtractiveGenerator(max_sentences=1, heading_scope="block").compose(
        question, _sources(flat)
    )
    [first] = ExtractiveGenerator(max_sentences=1).compose(question, _sources(flat))
    assert block.text == first.text
