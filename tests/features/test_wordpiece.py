"""BERT's WordPiece tokenisation: the documented steps, and the same ids as Hugging Face's."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.features import WordPieceTokenizer, basic_tokenize

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "un", "##aff", "##able", "!", ",", "cafe", "北", "京", "run", "##ning", "##s", "a", "##a",
]  # fmt: skip


@pytest.fixture
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, max_length=8, max_word_chars=10)


def test_basic_tokenisation_lowercases_strips_accents_and_splits_punctuation() -> None:
    assert basic_tokenize("Café, NAÏVE!") == ["cafe", ",", "naive", "!"]
    assert basic_tokenize("Café", lowercase=False) == ["Café"]


def test_cjk_ideographs_are_words_of_their_own() -> None:
    assert basic_tokenize("我爱北京abc") == ["我", "爱", "北", "京", "abc"]


def test_control_characters_are_dropped_and_whitespace_splits() -> None:
    assert basic_tokenize("a\x00b\u200bc\td\u00a0e\u3000f\x0bg") == ["abc", "d", "e", "fg"]


def test_capital_sigma_is_lowercased_character_by_character() -> None:
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"]  # not the final form "ς"


def test_greedy_longest_match_first_with_continuations(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.tokenize("unaffable running runs") == [
        "un", "##aff", "##able", "run", "##ning", "run", "##s",
    ]  # fmt: skip


def test_a_word_that_cannot_be_cut_is_one_unk(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.tokenize("unxable cafe") == ["[UNK]", "cafe"]


def test_an_over_long_word_is_unk(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.tokenize("a" * 4 + " " + "a" * 11) == ["a", "##a", "##a", "##a", "[UNK]"]


def test_special_tokens_in_the_text_are_kept(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.tokenize("cafe[SEP]un [MASK]") == ["cafe", "[SEP]", "un", "[MASK]"]
    assert tokenizer.tokenize("[sep]") == ["[UNK]", "[UNK]", "[UNK]"]  # case matters: plain text


def test_encode_adds_cls_sep_and_truncates(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.encode("un") == [2, 5, 3]
    ids = tokenizer.encode("a " * 20)
    assert (len(ids), ids[0], ids[-1]) == (8, 2, 3)
    assert tokenizer.encode("a a a", max_length=3) == [2, 16, 3]


def test_batch_pads_on_the_right_with_a_mask(tokenizer: WordPieceTokenizer) -> None:
    batch = tokenizer.encode_batch(["un", "unaffable !"])
    assert batch.input_ids.tolist() == [[2, 5, 3, 0, 0, 0], [2, 5, 6, 7, 8, 3]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]


def test_decode_glues_continuations(tokenizer: WordPieceTokenizer) -> None:
    ids = tokenizer.encode("Unaffable, running!", max_length=16)
    assert tokenizer.decode(ids) == "unaffable , running !"


@given(st.lists(st.text(max_size=30), min_size=1, max_size=5))
def test_batch_rows_equal_single_encodings(texts: list[str]) -> None:
    tokenizer = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, max_length=12)
    batch = tokenizer.encode_batch(texts)
    for row, text in enumerate(texts):
        ids = tokenizer.encode(text)
        assert 2 <= len(ids) <= 12
        assert batch.input_ids[row, : len(ids)].tolist() == ids
        assert int(batch.attention_mask[row].sum()) == len(ids)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)


def test_bad_input_and_bad_vocabularies(tokenizer: WordPieceTokenizer, tmp_path) -> None:
    with pytest.raises(InvalidInputError):
        tokenizer.encode(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        tokenizer.encode_batch("one string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        tokenizer.encode_batch([])
    with pytest.raises(InvalidInputError):
        tokenizer.encode("x", max_length=1)
    with pytest.raises(InvalidInputError):
        tokenizer.decode([999])
    with pytest.raises(ConfigError, match="special token"):
        WordPieceTokenizer({"a": 0})
    with pytest.raises(ConfigError, match="0..1"):
        WordPieceTokenizer({"[PAD]": 0, "[UNK]": 5})
    with pytest.raises(NotFoundError):
        WordPieceTokenizer.from_file(tmp_path / "missing.txt")
    (tmp_path / "dup.txt").write_text("[PAD]\n[PAD]\n")
    with pytest.raises(IntegrityError, match="more than once"):
        WordPieceTokenizer.from_file(tmp_path / "dup.txt")


def test_from_file_reads_line_numbers_as_ids(tmp_path) -> None:
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = WordPieceTokenizer.from_file(tmp_path / "vocab.txt")
    assert tokenizer.vocab == {t: i for i, t in enumerate(VOCAB)}


# ------------------------------------------------------- against Hugging Face


def _hf_tokenizer():  # the fast (Rust) tokenizer sentence-transformers uses
    transformers = pytest.importorskip("transformers")
    from genarch.errors import GenarchError
    from genarch.features import find_minilm_directory

    try:
        directory = find_minilm_directory()
    except GenarchError as error:
        pytest.skip(str(error))
    reference = transformers.BertTokenizerFast.from_pretrained(str(directory))
    return reference, WordPieceTokenizer.from_file(directory / "vocab.txt", max_length=256)


VARIED = [
    "Hello, world! How's it going?",
    "Café résumé naïve ÉCOLE Ångström façade",
    "北京是中国的首都。東京は日本の首都です。",
    "한국어 텍스트 and Привет, мир! مرحبا بالعالم",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 150 + " tail",
    "tab\there\nnewline\r\ncarriage\x0bvertical\x0c\x85 nel\u2028sep\u00a0nbsp\u200bzero-width",
    "a[SEP]b [MASK] [cls] [UNK]",
    "emoji 😀👍🏽 and symbols ©®™ ½ ∞ ≠ √",
    "don't-stop_now... (yes) {x} @user #tag $5 100% a/b c\\d ~e `f`",
    "ΟΔΟΣ ΣΟΦΙΑΣ İstanbul ß ﬁnance ǅ",
    "\x00nul\ufffdreplacement",
    "",
    " ".join(["word"] * 300),
    "def __init__(self, *args, **kwargs) -> None: return x[0] >= 1e-5",
]

# Scripts and symbols whose Unicode properties are stable across versions (the
# Rust tokenizer's tables are older than Python's: characters assigned recently,
# e.g. U+061D, are classified differently, so they are left out here).
ALPHABET = (
    "".join(
        ch
        for start, stop in (
            (0, 0x250),
            (0x370, 0x3FF),
            (0x400, 0x4FF),
            (0x600, 0x61C),
            (0x620, 0x6FF),
            (0x2000, 0x206F),
            (0x3000, 0x303F),
            (0x4E00, 0x4F00),
            (0xAC00, 0xAD00),
            (0x1F600, 0x1F650),
        )
        for ch in map(chr, range(start, stop))
        if unicodedata.category(ch) != "Cn"
    )
    + "\u0300\u0301\u0308\u0327"
)


def test_ids_match_hugging_face_on_varied_text() -> None:
    reference, tokenizer = _hf_tokenizer()
    for text in VARIED:
        expected = reference(text, truncation=True, max_length=256)["input_ids"]
        assert tokenizer.encode(text) == expected, text


def test_ids_match_hugging_face_on_random_text() -> None:
    reference, tokenizer = _hf_tokenizer()

    @given(st.text(alphabet=ALPHABET, max_size=60))
    def same_ids(text: str) -> None:
        expected = reference(text, truncation=True, max_length=256)["input_ids"]
        assert tokenizer.encode(text) == expected

    same_ids()


# ------------------------------------------------------------------ every string, every code point

# Characters where the peer's Unicode data and Python's disagree, or that need care:
# unassigned in Python's tables, assigned after the peer's tables (U+0890 format,
# U+061D and U+2E55 punctuation, U+1734 a mark), every CJK range and its edges
# (Extensions B-F, the U+2B820/U+2B920 difference, compatibility ideographs),
# Hangul, accents and combining marks that canonical ordering moves.
TRICKY = [
    "\U0001fa77", "\U0001fae8", "\U000e01f0", "\U0010fffd", "\U0003134a", "\U00031350",
    "\u0890", "\u0891", "\u08e2", "\u061d", "\u2e55", "\u2e5d", "\u1734", "\u0d81", "\u1abf",
    "\u4e00", "\u9fff", "\u3400", "\u4dbf", "\U00020000", "\U0002a6df", "\U0002a700",
    "\U0002b73f", "\U0002b740", "\U0002b81f", "\U0002b820", "\U0002b91f", "\U0002b920",
    "\U0002ceaf", "\U0002ceb0", "\U0002ebe0", "\uf900", "\ufaff", "\U0002f800", "\U0002fa1f",
    "\uac00", "\ud7a3", "\u1100", "\u0301", "\u0308", "\u0327", "\u0345", "\U0001d165",
    "\U0001d16d", "\U0001d16e", "\u05b0", "\u0f71", "\u0f72", "\u0f73", "\u0130", "\u03a3",
    "\u00df", "\ufb01", "\u01c5", "\x00", "\x7f", "\x85", "\u200b", "\u2028", "\ufffd",
    "\u180e", "\ufeff", "\u3000", "\u00a0", "[CLS]", "[SEP]", "[MASK]", "[cls]",
]  # fmt: skip
ANY_TEXT = st.lists(
    st.one_of(
        st.characters(exclude_categories=("Cs",)),  # any code point, assigned or not
        st.sampled_from(TRICKY),
        st.sampled_from(list("ab Z.,!?'-")),
    ),
    max_size=40,
).map("".join)


@pytest.fixture(scope="module")
def hugging_face() -> tuple[object, WordPieceTokenizer]:
    return _hf_tokenizer()


@given(text=ANY_TEXT)
def test_ids_match_hugging_face_on_any_text(hugging_face, text: str) -> None:
    reference, tokenizer = hugging_face
    expected = reference(text, truncation=True, max_length=256)["input_ids"]
    assert tokenizer.encode(text) == expected


@pytest.mark.parametrize("char", TRICKY)
def test_ids_match_hugging_face_on_each_tricky_character(hugging_face, char: str) -> None:
    reference, tokenizer = hugging_face
    for text in (char, f"a{char}b", f"x {char} y", f"e{char}\u0301\u0316", f"{char}{char}"):
        expected = reference(text, truncation=True, max_length=256)["input_ids"]
        assert tokenizer.encode(text) == expected, [hex(ord(c)) for c in text]


def test_a_character_python_does_not_know_is_unk_not_deleted(hugging_face) -> None:
    _reference, tokenizer = hugging_face
    assert tokenizer.tokenize("love \U0001fa77") == ["love", "[UNK]"]


def test_the_documented_cjk_ranges_are_the_ones_used() -> None:
    from genarch.features.wordpiece import CJK_RANGES

    for first, last in CJK_RANGES:
        for code in (first, last):
            assert basic_tokenize(f"a{chr(code)}b", lowercase=False) == ["a", chr(code), "b"]
    for outside in (0x2B820, 0x2B91F, 0x2CEB0, 0x2EBE0, 0x31350):  # Extension E/F edges
        assert basic_tokenize(f"a{chr(outside)}b", lowercase=False) == [f"a{chr(outside)}b"]


def test_the_table_is_measured_from_the_installed_peer() -> None:
    """Every code point of a few blocks classifies and lower-cases as the peer does."""
    normalizers = pytest.importorskip("tokenizers.normalizers")
    from genarch.features.wordpiece import _normalize

    lower = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    cased = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False
    )
    blocks = [(0, 0x3000), (0x1F000, 0x1FB00), (0x2B700, 0x2CF00), (0xE0000, 0xE0200)]
    for first, last in blocks:
        for code in range(first, last):
            char = chr(code)
            assert _normalize(char, True) == lower.normalize_str(char), hex(code)
            assert _normalize(char, False) == cased.normalize_str(char), hex(code)
