"""Hypothesis strategies for genarch records (needs ``hypothesis``: ``pip install 'genarch[dev]'``).

Examples:
    >>> from hypothesis import given
    >>> from genarch.testing.strategies import documents
    >>> @given(documents())
    ... def test_ids_survive(document):
    ...     assert document.id
"""

from __future__ import annotations

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover
    from genarch.errors import missing_dependency

    raise missing_dependency("hypothesis", "dev", "genarch.testing.strategies") from error

from genarch.schemas import (
    Chunk,
    Correction,
    Document,
    Metadata,
    Preference,
    Rating,
    TextRequest,
)

__all__ = ["chunks", "documents", "feedback", "metadata", "text", "text_requests"]

_IDS = st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12)


def text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Arbitrary Unicode text, including control, combining and astral characters."""
    return st.text(max_size=max_size)


def metadata() -> st.SearchStrategy[Metadata]:
    """Flat metadata with JSON scalar values."""
    scalars = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20)
    return st.dictionaries(_IDS, scalars, max_size=3)


def documents(max_size: int = 200) -> st.SearchStrategy[Document]:
    """:class:`~genarch.schemas.Document` records with arbitrary text."""
    return st.builds(Document, id=_IDS, text=text(max_size), metadata=metadata())


@st.composite
def chunks(draw: st.DrawFn) -> Chunk:
    """:class:`~genarch.schemas.Chunk` records whose span is consistent with their text."""
    source = draw(text(300))
    start = draw(st.integers(0, len(source)))
    end = draw(st.integers(start, len(source)))
    return Chunk(
        id=draw(_IDS), document_id=draw(_IDS), text=source[start:end], start=start, end=end
    )


def text_requests() -> st.SearchStrategy[TextRequest]:
    """Valid :class:`~genarch.schemas.TextRequest`\\ s with small budgets and a seed."""
    return st.builds(
        TextRequest,
        prompt=st.text(min_size=1, max_size=40),
        max_new_tokens=st.integers(0, 16),
        temperature=st.floats(0.0, 2.0),
        top_k=st.none() | st.integers(1, 50),
        top_p=st.floats(0.05, 1.0),
        seed=st.integers(0, 2**31),
    )


def feedback() -> st.SearchStrategy[Rating | Correction | Preference]:
    """Ratings, corrections and preferences with arbitrary text (valid ones: a
    non-empty prompt, a correction that changes the output, two different answers)."""
    short = st.text(max_size=50)
    prompt = st.text(min_size=1, max_size=50)
    pair = st.tuples(short, short).filter(lambda p: p[0] != p[1])
    return st.one_of(
        st.builds(Rating, prompt=prompt, output=short, score=st.floats(0.0, 1.0)),
        pair.flatmap(
            lambda p: st.builds(
                Correction, prompt=prompt, output=st.just(p[0]), corrected=st.just(p[1])
            )
        ),
        pair.flatmap(
            lambda p: st.builds(
                Preference, prompt=prompt, chosen=st.just(p[0]), rejected=st.just(p[1])
            )
        ),
    )
