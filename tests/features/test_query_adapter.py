"""QueryAdapter: a learned question-side map, its file, and what it learns."""

from __future__ import annotations

import pytest
import torch

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.features import (
    AdapterExample,
    HashingVectorizer,
    QueryAdapter,
    fit_query_adapter,
    model_fingerprint,
)

WORDS = ["why", "because", "however", "note", *(f"topic{i}" for i in range(40))]


class Words:
    """A toy sentence encoder: one dimension per known word (counts)."""

    dim = len(WORDS)

    def extract(self, items):
        out = torch.zeros(len(items), self.dim)
        for row, text in enumerate(items):
            for word in text.split():
                out[row, WORDS.index(word)] += 1.0
        return out


def _examples(topics: range) -> list[AdapterExample]:
    # The answer explains ("because"); a distractor with the same topic word does
    # not ("however"). By cosine alone they tie; what answers a "why" question
    # is the same for every topic, so it can be learned on some and hold on others.
    return [
        AdapterExample(
            question=f"why topic{i}",
            candidates=(f"topic{i} however note", f"topic{i} because note", "note"),
            answers=(1,),
        )
        for i in topics
    ]


def _ranked_first(encoder, questions, examples) -> int:
    right = 0
    for example in examples:
        q = torch.nn.functional.normalize(questions.extract([example.question]), dim=1)[0]
        c = torch.nn.functional.normalize(encoder.extract(list(example.candidates)), dim=1)
        scores = c @ q
        right += int(scores.argmax()) in example.answers and scores.max() > scores.min() + 1e-6
    return right


def test_the_adapter_learns_what_answers_a_kind_of_question_and_it_holds_on_unseen_ones():
    encoder = Words()
    seen, unseen = _examples(range(20)), _examples(range(20, 40))
    assert _ranked_first(encoder, encoder, unseen) == 0  # by cosine alone: ties
    adapter = fit_query_adapter(encoder, seen, rank=4, steps=100)
    assert _ranked_first(encoder, adapter, seen) == 20
    assert _ranked_first(encoder, adapter, unseen) == 20
    # deterministic: the same examples and seed give the same map
    again = fit_query_adapter(encoder, seen, rank=4, steps=100)
    assert torch.equal(again.down, adapter.down)
    assert torch.equal(again.up, adapter.up)


def test_an_adapter_is_saved_and_loaded_only_for_its_encoder(tmp_path):
    encoder = HashingVectorizer(dim=16)
    adapter = QueryAdapter(encoder, torch.randn(16, 3), torch.randn(3, 16))
    path = tmp_path / "adapter.safetensors"
    adapter.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["adapter.safetensors"]  # no temporary left
    loaded = QueryAdapter.load(path, HashingVectorizer(dim=16))
    assert loaded.rank == 3
    assert torch.equal(loaded.extract(["a b c"]), adapter.extract(["a b c"]))
    assert torch.allclose(loaded.extract(["a b c"]).norm(dim=1), torch.ones(1))
    with pytest.raises(InvalidInputError, match="fitted on another encoder"):
        QueryAdapter.load(path, HashingVectorizer(dim=16, lowercase=False))
    with pytest.raises(NotFoundError, match="no query adapter"):
        QueryAdapter.load(tmp_path / "missing.safetensors", encoder)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(IntegrityError, match="not a safetensors file"):
        QueryAdapter.load(tmp_path / "junk.safetensors", encoder)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(IntegrityError, match="not a query adapter"):
        QueryAdapter.load(tmp_path / "other.safetensors", encoder)


def test_a_cached_encoder_stands_for_its_model(tmp_path):
    from genarch.features import CachedExtractor

    encoder = HashingVectorizer(dim=8)
    adapter = QueryAdapter(encoder, torch.zeros(8, 1), torch.zeros(1, 8))
    adapter.save(tmp_path / "a.safetensors")
    with CachedExtractor(encoder, tmp_path / "cache.sqlite") as cached:
        assert cached.fingerprint == model_fingerprint(encoder)
        assert QueryAdapter.load(tmp_path / "a.safetensors", cached).rank == 1


def test_bad_adapters_and_fits_are_refused():
    encoder = HashingVectorizer(dim=8)
    with pytest.raises(InvalidInputError, match="FeatureExtractor"):
        QueryAdapter(object(), torch.zeros(8, 1), torch.zeros(1, 8))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"down \(dim=8, rank\)"):
        QueryAdapter(encoder, torch.zeros(7, 1), torch.zeros(1, 8))
    with pytest.raises(InvalidInputError, match="wrap one text in a list"):
        QueryAdapter(encoder, torch.zeros(8, 1), torch.zeros(1, 8)).extract("one text")
    with pytest.raises(InvalidInputError, match="at least one AdapterExample"):
        fit_query_adapter(encoder, [])
    with pytest.raises(InvalidInputError, match="item 0 is dict"):
        fit_query_adapter(encoder, [{"question": "q"}])  # type: ignore[list-item]
    good = [AdapterExample(question="q", candidates=("a", "b"), answers=(0,))]
    with pytest.raises(InvalidInputError, match="rank as an int >= 1"):
        fit_query_adapter(encoder, good, rank=0)
    with pytest.raises(InvalidInputError, match="temperature > 0"):
        fit_query_adapter(encoder, good, temperature=0.0)
    with pytest.raises(InvalidInputError, match="l2 >= 0"):
        fit_query_adapter(encoder, good, l2=-1.0)
    with pytest.raises(InvalidInputError, match="answers must index the 2 candidates"):
        AdapterExample(question="q", candidates=("a", "b"), answers=(2,))
    with pytest.raises(InvalidInputError):
        AdapterExample(question="q", candidates=("a",), answers=())
