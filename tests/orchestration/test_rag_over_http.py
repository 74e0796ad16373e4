"""The RAG assistant writing its answers through an OpenAI-compatible server.

The server is genarch's own (``create_app`` under uvicorn on 127.0.0.1), and
the model behind it is the extractive generator, which answers from the
prompt alone: so the answers that cross HTTP can be compared with the ones
made in process, citation for citation.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from genarch.cli import _answer_writer, build_parser
from genarch.data import python_docs
from genarch.deploy import GenerationService, OpenAICompatibleGenerator, create_app
from genarch.errors import InvalidInputError
from genarch.orchestration import Answer, NotFound, quickstart_answers
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.grounded_prompt import NOT_FOUND_MARKER
from genarch.orchestration.quickstart import quickstart_rag
from genarch.schemas import TextRequest, TextResult

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
import uvicorn

TOPICS = {"break", "continue", "pass", "for", "while", "if", "try", "with", "assert", "del"}
QUESTIONS = [
    "What does the pass statement do?",
    "What does the break statement do?",
    "When is the else clause of a for loop executed?",
    "What does the assert statement do?",
    "How do I cook a perfect risotto with saffron?",  # not in the sources
]


class Declines:
    """A model that always says the sources do not hold the answer."""

    def generate(self, request: TextRequest) -> TextResult:
        return TextResult(text=f"{NOT_FOUND_MARKER} nothing here", finish_reason="stop")

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(generator: object, model: str) -> Iterator[str]:
    """``generator`` behind genarch's HTTP app on a free loopback port; yields the API root."""
    app = create_app(GenerationService(generator, max_wait_ms=1), model_name=model)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn sets it once the socket listens and the app started
        assert thread.is_alive(), "the server stopped before it started"
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def extractive_server() -> Iterator[str]:
    yield from serve(ExtractiveGenerator(), "extractive")


@pytest.fixture(scope="module")
def documents() -> list:
    return [d for d in python_docs() if d.id in TOPICS]


def test_answers_over_http_equal_the_in_process_ones(extractive_server: str, documents) -> None:
    # the in-process twin: the same generator answering from the prompt (not its typed path)
    rag = quickstart_rag(documents, generator=ExtractiveGenerator()).with_config(grounded=False)
    local = [rag.run(question) for question in QUESTIONS]
    with OpenAICompatibleGenerator(extractive_server, model="extractive") as client:
        remote = quickstart_answers(documents, QUESTIONS, generator=client)
    assert [r.model_dump(exclude={"prompt"}) for r in remote] == [
        r.model_dump(exclude={"prompt"}) for r in local
    ]
    answered = [r for r in remote if isinstance(r, Answer)]
    assert len(answered) >= 3
    texts = {d.id: d.text for d in documents}
    citations = [c for a in answered for s in a.statements for c in s.citations]
    for citation in citations:  # every citation points at the exact text it quotes
        assert texts[citation.document_id][citation.start : citation.end] == citation.quote
    assert sum(c.verbatim for c in citations) >= 3  # sentences found word for word
    assert isinstance(remote[-1], NotFound)  # the risotto question is declined before the model


def test_a_model_that_declines_gives_not_found(documents) -> None:
    for url in serve(Declines(), "declines"):
        with OpenAICompatibleGenerator(url, model="declines") as client:
            [result] = quickstart_answers(documents, QUESTIONS[:1], generator=client)
        assert isinstance(result, NotFound)
        assert result.reason == "declined"


def test_the_quickstart_flags_build_the_client_or_refuse_clearly() -> None:
    parse = build_parser().parse_args
    assert _answer_writer(parse(["quickstart"]))[0] is None  # the extractive generator
    client, name = _answer_writer(
        parse(["quickstart", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"])
    )
    assert isinstance(client, OpenAICompatibleGenerator)
    assert name == "m at http://127.0.0.1:9/v1"
    client.close()
    with pytest.raises(InvalidInputError, match="--llm-model NAME"):
        _answer_writer(parse(["quickstart", "--llm-url", "http://127.0.0.1:9/v1"]))
    with pytest.raises(InvalidInputError, match="needs --llm-url"):
        _answer_writer(parse(["quickstart", "--llm-model", "m"]))
