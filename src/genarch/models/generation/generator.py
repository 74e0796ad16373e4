"""The decoding engine: :class:`TextGenerator`, a GPT and its tokenizer behind genarch's protocols.

How it decodes:

* **KV cache.** Keys and values of every layer live in one tensor allocated
  once per call (:class:`~genarch.models.transformer.KVCache`); each step runs
  the model on the new token only and appends to it.
* **Batches.** Prompts of different lengths are left-padded; each row gets
  the positions it would have alone and a mask that hides the padding, so a
  batch gives the same tokens as generating each prompt alone.
* **Sampling** by a :class:`~genarch.models.generation.sampling.TokenSampler`
  built per call, each row from its own seeded ``torch.Generator``.
* **Stopping**: ``max_new_tokens``, stop token ids, stop strings (watched by an
  :class:`~genarch.models.generation.detokenizer.IncrementalDetokenizer`), or
  the end of the model's context (``finish_reason`` ``"length"``, ``"stop"``,
  ``"end"``).

Log-probabilities are those of the model itself (a log-softmax of its logits,
before penalties and temperature).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import torch
from torch import Tensor

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, RegistryError
from genarch.models.decode_step import decoding, step_function
from genarch.models.generation.detokenizer import IncrementalDetokenizer
from genarch.models.generation.prefix_cache import PrefixCache, prefill
from genarch.models.generation.rows import DecodingRow, record_tokens
from genarch.models.generation.sampling import TokenSampler
from genarch.models.generation.session import TextDecodingSession
from genarch.models.ngram import Interpolation, NGramLM
from genarch.models.transformer import GPT
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike, Tokenizer
from genarch.registry import Registry, builtin_registry
from genarch.schemas import TextRequest, TextResult
from genarch.validation import describe, ensure_iterable

__all__ = ["TextGenerator"]

logger = logging.getLogger(__name__)

GENERATOR_FILE = "generator.json"
FORMAT = "genarch.TextGenerator"  # the kind in generator.json (kept: old saves load)
_SEED_RANGE = (-(2**63), 2**64 - 1)


class TextGenerator:
    """A GPT language model and its tokenizer behind genarch's text-generation protocols.

    Implements :class:`~genarch.protocols.Generator` ``[TextRequest, TextResult]``,
    :class:`~genarch.protocols.StreamingGenerator` (``stream`` yields text
    pieces), :class:`~genarch.protocols.ContinuousBatchingGenerator`
    (:meth:`open_session`) and :class:`~genarch.protocols.ScoringGenerator` ``[str]``
    (``log_prob``); it is :class:`~genarch.protocols.Persistable` when its
    tokenizer is (see :meth:`save`).

    Args:
        model: the language model; generation uses its device and dtype.
        tokenizer: any :class:`~genarch.protocols.Tokenizer` whose ids fit the
            model's vocabulary.
        max_batch_size: the most rows decoded together by :meth:`generate_batch`
            and :meth:`log_prob`.
        prefix_cache: reuse the keys and values of prompt prefixes seen before
            (:class:`~genarch.models.generation.prefix_cache.PrefixCache`; it may
            be shared by several generators). The tokens are those of decoding
            without it; only the prompt's shared part is not recomputed.
        interpolation: mix the model's next-token distribution with a count
            model's at every step (:class:`~genarch.models.ngram.Interpolation`);
            sampling, log-probabilities and :meth:`log_prob` are then the
            mixture's.

    Raises:
        ConfigError: the tokenizer has more ids than the model's vocabulary.

    Examples:
        >>> import torch
        >>> from genarch.models import GPT, GPTConfig
        >>> class Bytes:
        ...     vocab_size = 256
        ...     def encode(self, text): return list(text.encode())
        ...     def decode(self, ids): return bytes(ids).decode(errors="replace")
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig(vocab_size=256, context_length=64, n_layer=1, n_head=2, n_embd=32))
        >>> generator = TextGenerator(model, Bytes())
        >>> result = generator.generate(TextRequest(prompt="Hi", max_new_tokens=5, seed=1))
        >>> len(result.token_ids), result.finish_reason
        (5, 'length')
        >>> result == generator.generate(TextRequest(prompt="Hi", max_new_tokens=5, seed=1))
        True
    """

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        *,
        max_batch_size: int = 32,
        prefix_cache: PrefixCache | None = None,
        interpolation: Interpolation | None = None,
    ) -> None:
        if not isinstance(model, GPT):
            raise InvalidInputError(f"TextGenerator expected a GPT model, got {describe(model)}")
        for name in ("vocab_size", "encode", "decode"):
            if not hasattr(tokenizer, name):
                raise InvalidInputError(
                    f"TextGenerator expected a Tokenizer (vocab_size, encode, decode); "
                    f"{type(tokenizer).__name__} has no {name!r}"
                )
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model's vocabulary has "
                f"only {model.config.vocab_size}; build the model with "
                f"vocab_size >= {tokenizer.vocab_size}"
            )
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be a positive int, got {max_batch_size!r}")
        if prefix_cache is not None and not isinstance(prefix_cache, PrefixCache):
            raise InvalidInputError(
                f"prefix_cache must be a PrefixCache or None, got {describe(prefix_cache)}"
            )
        if interpolation is not None:
            if not isinstance(interpolation, Interpolation):
                raise InvalidInputError(
                    f"interpolation must be an Interpolation or None, got {describe(interpolation)}"
                )
            if interpolation.counts.vocab_size > model.config.vocab_size:
                raise ConfigError(
                    f"the count model has {interpolation.counts.vocab_size} ids but the model's "
                    f"vocabulary has only {model.config.vocab_size}"
                )
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.prefix_cache = prefix_cache
        self.interpolation = interpolation

    def __repr__(self) -> str:
        return f"TextGenerator({self.model.config!r}, tokenizer={type(self.tokenizer).__name__})"

    # ---------------------------------------------------------------- requests

    def _prepare(self, request: object) -> tuple[TextRequest, list[int]]:
        """Validate a request and encode its prompt, before any model work."""
        if not isinstance(request, TextRequest):
            raise InvalidInputError(f"expected a TextRequest, got {describe(request)}")
        # Requests built with model_construct/model_copy skip pydantic: validate them
        # again, so every bound of TextRequest (finite sampling settings) holds here.
        TextRequest.parse(request.model_dump())
        if request.seed is not None and not _SEED_RANGE[0] <= request.seed <= _SEED_RANGE[1]:
            raise InvalidInputError(f"seed must fit in 64 bits, got {request.seed}")
        vocab = self.model.config.vocab_size
        if bad := [t for t in request.stop_token_ids if not 0 <= t < vocab]:
            raise InvalidInputError(f"stop_token_ids {bad} are outside range({vocab})")
        if request.logprobs is not None and request.logprobs > vocab:
            raise InvalidInputError(f"logprobs asks for {request.logprobs} alternatives of {vocab}")
        if not request.prompt:
            raise InvalidInputError(
                "the prompt is empty; the model needs at least one token to continue"
            )
        ids = self.tokenizer.encode(request.prompt)
        context = self.model.config.context_length
        # As in transformers: a prompt may fill the whole context. Its last position
        # predicts one more token, which is never fed back, so it needs no position.
        if len(ids) > context:
            raise InvalidInputError(
                f"the prompt is {len(ids)} tokens long, but the model's context holds {context}; "
                "shorten the prompt"
            )
        return request, ids

    def _generators(
        self, requests: Sequence[TextRequest], generator: torch.Generator | None
    ) -> list[torch.Generator]:
        device = self.model.wte.weight.device
        generators = []
        for request in requests:
            if generator is not None:
                generators.append(generator)
                continue
            fresh = torch.Generator(device=device)
            if request.seed is None:
                fresh.seed()  # fresh entropy, without touching the global generator
            else:
                fresh.manual_seed(request.seed)
            generators.append(fresh)
        return generators

    # -------------------------------------------------------------- generation

    def generate(
        self, request: TextRequest, *, generator: torch.Generator | None = None
    ) -> TextResult:
        """Continue ``request.prompt``.

        Args:
            request: the prompt and sampling settings.
            generator: draw samples from this ``torch.Generator`` instead of one
                seeded from ``request.seed``.

        Raises:
            InvalidInputError: not a TextRequest, an empty prompt, a prompt that
                leaves no room in the context, an unknown stop token id, ...
        """
        prepared = self._prepare(request)
        rows = self._rows([prepared])
        with decoding(self.model):
            for _ in self._decode(rows, self._generators([prepared[0]], generator)):
                pass
        return rows[0].result()

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        """Generate for many requests, decoded together; equal to ``[generate(r) for r in requests]``.

        Every request is validated before any is decoded.

        Raises:
            InvalidInputError: ``requests`` is not a sequence of valid TextRequests.
        """
        prepared = [self._prepare(r) for r in ensure_iterable(requests, "generate_batch")]
        results: list[TextResult] = []
        for begin in range(0, len(prepared), self.max_batch_size):
            chunk = prepared[begin : begin + self.max_batch_size]
            rows = self._rows(chunk)
            with decoding(self.model):
                for _ in self._decode(rows, self._generators([r for r, _ in chunk], None)):
                    pass
            results.extend(row.result() for row in rows)
        return results

    def stream(
        self, request: TextRequest, *, generator: torch.Generator | None = None
    ) -> Iterator[str]:
        """Yield the generated text in pieces as it is decoded.

        Pieces never split a multi-byte character nor show part of a stop
        string; joined, they equal ``generate(request).text``. The request is
        validated when ``stream`` is called, not when iteration starts.

        Raises:
            InvalidInputError: as :meth:`generate`.
        """
        prepared = self._prepare(request)
        generators = self._generators([prepared[0]], generator)

        def pieces() -> Iterator[str]:
            rows = self._rows([prepared])
            detokenizer = rows[0].detokenizer
            # Each step runs in inference mode with dropout off; between steps, while the
            # caller holds the stream, neither setting leaks into the caller's code.
            steps = self._decode(rows, generators)
            while True:
                with decoding(self.model):
                    if next(steps, _DONE) is _DONE:
                        break
                if piece := detokenizer.ready():
                    yield piece
            if rest := detokenizer.flush():
                yield rest

        return pieces()

    def open_session(self, max_rows: int) -> TextDecodingSession:
        """A :class:`~genarch.models.generation.session.TextDecodingSession` for continuous batching.

        Requests join it between steps and leave as they finish; each gets the
        tokens :meth:`generate` gives it alone. It holds a KV cache for up to
        ``max_rows`` rows while any row is active.

        Raises:
            InvalidInputError: ``max_rows`` is not a positive int.
        """
        return TextDecodingSession(self, max_rows)

    def _rows(self, prepared: Sequence[tuple[TextRequest, list[int]]]) -> list[DecodingRow]:
        context = self.model.config.context_length
        rows = [
            DecodingRow(request, ids, context, IncrementalDetokenizer(self.tokenizer, request.stop))
            for request, ids in prepared
        ]
        for row in rows:
            if row.request.max_new_tokens == 0:
                row.finish_reason = "length"
        return rows

    def _decode(self, rows: list[DecodingRow], generators: list[torch.Generator]) -> Iterator[None]:
        """Run the model over the rows' prompts and then one token per step, updating the rows.

        Yields after every step; stops when every row is finished. Call it
        inside :func:`~genarch.models.decode_step.decoding` (inference mode, dropout off).
        """
        prompts = [row.prompt_ids for row in rows]
        context = self.model.config.context_length
        steps = max(  # the last token of a row is sampled but never fed back: +1
            min(r.request.max_new_tokens, context - len(p) + 1)
            for r, p in zip(rows, prompts, strict=True)
        )
        if steps <= 0:
            return
        model = self.model
        device = model.wte.weight.device
        batch = len(rows)
        sampler = TokenSampler([r.request for r in rows], generators, device)
        top = max(  # the most alternatives any row wants, None if no row wants log-probs
            (r.request.logprobs for r in rows if r.request.logprobs is not None), default=None
        )
        seen = counts = None
        if sampler.penalised:
            vocab = model.config.vocab_size
            counts = torch.zeros((batch, vocab), device=device)
            seen = torch.zeros((batch, vocab), dtype=torch.bool, device=device)
            for i, prompt in enumerate(prompts):
                seen[i, prompt] = True
        one_token = step_function(model)  # module-free when the model is a stock GPT
        state = prefill(model, prompts, steps, self.prefix_cache)
        cache, logits, key_mask, lengths = state.cache, state.logits, state.key_mask, state.lengths
        for step in range(steps):
            logits = self.next_token_logits(logits, rows)
            tokens = sampler(logits, seen, counts)
            record_tokens(rows, tokens, logits if top is not None else None, top or 0)
            yield None
            if all(row.finish_reason is not None for row in rows) or step == steps - 1:
                break
            if counts is not None and seen is not None:
                counts.scatter_add_(1, tokens[:, None], torch.ones_like(counts[:, :1]))
                seen.scatter_(1, tokens[:, None], True)
            step_positions = None
            if key_mask is not None:
                step_positions = (lengths + step).clamp(max=context - 1)
            logits = one_token(tokens, cache, step_positions, key_mask).float()

    def next_token_logits(self, logits: Tensor, rows: Sequence[DecodingRow]) -> Tensor:
        """What the sampler sees: the model's ``logits (B, V)`` mixed with the count model
        (when there is one) and with ids the tokenizer cannot decode ruled out."""
        if self.interpolation is not None:
            logits = self.interpolation.mix(logits, [r.prompt_ids + r.token_ids for r in rows])
        if self.tokenizer.vocab_size < logits.size(-1):  # never choose what cannot be decoded
            logits[:, self.tokenizer.vocab_size :] = -torch.inf
        return logits

    # ----------------------------------------------------------------- scoring

    def log_prob(self, samples: Sequence[str]) -> Tensor:
        """The log-likelihood of each text under the model, as float64 ``(len(samples),)``.

        The sum over tokens of ``log p(token | tokens before it)``. The model
        has no start-of-text token, so a text's first token is the context and
        is not scored: texts of fewer than two tokens score 0.

        Raises:
            InvalidInputError: not a sequence of strings, or a text longer than
                the context.
        """
        texts = list(ensure_iterable(samples, "log_prob"))
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"log_prob expected strings, item {index} is {describe(text)}"
                )
        encoded = [self.tokenizer.encode(text) for text in texts]
        context = self.model.config.context_length
        for index, ids in enumerate(encoded):
            if len(ids) > context:
                raise InvalidInputError(
                    f"text {index} is {len(ids)} tokens long; the context holds {context}"
                )
        scores = torch.zeros(len(texts), dtype=torch.float64)
        model, device = self.model, self.model.wte.weight.device
        scored = [i for i, ids in enumerate(encoded) if len(ids) >= 2]
        with decoding(model):
            for begin in range(0, len(scored), self.max_batch_size):
                chunk = scored[begin : begin + self.max_batch_size]
                width = max(len(encoded[i]) for i in chunk)
                idx = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):  # right padding: causal attention never sees it
                    idx[row, : len(encoded[i])] = torch.tensor(encoded[i])
                idx = idx.to(device)
                logits = model.lm_head(model.hidden_states(idx[:, :-1])).float()
                token_logprobs = logits.log_softmax(dim=-1).gather(2, idx[:, 1:, None])[..., 0]
                for row, i in enumerate(chunk):
                    tokens = token_logprobs[row, : len(encoded[i]) - 1].double().cpu()
                    if self.interpolation is not None:
                        tokens = self._mixed_log_probs(tokens, encoded[i])
                    scores[i] = tokens.sum()
        return scores

    def _mixed_log_probs(self, model: Tensor, ids: list[int]) -> Tensor:
        """Per-token log-probabilities of the mixture, from the model's (float64)."""
        assert self.interpolation is not None
        weight = self.interpolation.weight
        counts = self.interpolation.counts.token_log_probs(ids)
        return torch.log((1 - weight) * model.exp() + weight * counts.exp())

    # -------------------------------------------------------------- persistence

    def save(self, directory: PathLike, *, registry: Registry | None = None) -> None:
        """Save the model and the tokenizer into ``directory`` atomically.

        Layout: ``generator.json``, ``model/`` (:meth:`GPT.save`),
        ``tokenizer/`` (the tokenizer's own ``save``) and, with an
        interpolation, ``interpolation/`` (:meth:`NGramLM.save
        <genarch.models.ngram.NGramLM.save>`; its weight is in the header). The tokenizer must be
        :class:`~genarch.protocols.Persistable`; its class is recorded by its
        name in ``registry`` (default: :func:`~genarch.registry.builtin_registry`)
        or, for classes not registered, as ``module:QualifiedName``.

        Raises:
            InvalidInputError: the tokenizer cannot save itself.
        """
        tokenizer = self.tokenizer
        if not callable(getattr(tokenizer, "save", None)) or not callable(
            getattr(type(tokenizer), "load", None)
        ):
            raise InvalidInputError(
                f"cannot save the tokenizer: {type(tokenizer).__name__} has no save()/load(); "
                "use a Persistable tokenizer"
            )
        registry = registry or builtin_registry()
        kind = type(tokenizer)
        try:
            name = registry.name_of(kind)
        except RegistryError:
            name = f"{kind.__module__}:{kind.__qualname__}"

        interpolation = self.interpolation

        def write_parts(staging: Path) -> None:
            self.model.save(staging / "model")
            tokenizer.save(staging / "tokenizer")  # type: ignore[attr-defined]
            if interpolation is not None:
                interpolation.counts.save(staging / "interpolation")

        header: dict[str, Any] = {"tokenizer": name, "max_batch_size": self.max_batch_size}
        if interpolation is not None:
            header["interpolation_weight"] = interpolation.weight
        save_component(
            directory,
            FORMAT,
            header=header,
            write_files=write_parts,
            header_file=GENERATOR_FILE,
        )

    @classmethod
    def load(
        cls,
        directory: PathLike,
        *,
        registry: Registry | None = None,
        device: str | torch.device = "cpu",
    ) -> Self:
        """Load a generator written by :meth:`save` (also after a save interrupted by a crash).

        The tokenizer class is looked up by its recorded name in ``registry``
        (default: :func:`~genarch.registry.builtin_registry`), or, for a
        ``module:QualifiedName``, among the modules already imported: loading
        never imports a module named in a file.

        Raises:
            NotFoundError: ``directory`` holds no saved generator.
            IntegrityError: the files are corrupt or incomplete, or the tokenizer
                class is unknown.
        """
        saved = open_saved(directory, FORMAT, header_file=GENERATOR_FILE)
        tokenizer_type = _resolve_class(
            str(saved.field("tokenizer")), registry or builtin_registry()
        )
        with reading(FORMAT, saved.root):  # a part missing inside the save means it is damaged
            tokenizer = tokenizer_type.load(saved.root / "tokenizer")
            model = GPT.load(saved.root / "model", device=device)
            max_batch_size = int(saved.header.get("max_batch_size", 32))
            interpolation = None
            if "interpolation_weight" in saved.header:
                counts = NGramLM.load(saved.root / "interpolation")
                interpolation = Interpolation(counts, float(saved.header["interpolation_weight"]))
            return cls(model, tokenizer, max_batch_size=max_batch_size, interpolation=interpolation)


def _resolve_class(name: str, registry: Registry) -> Any:
    if ":" not in name:
        try:
            return registry.resolve(name)
        except RegistryError as error:
            raise IntegrityError(f"the saved tokenizer's class is unknown: {error}") from None
    module_name, _, qualname = name.partition(":")
    target: Any = sys.modules.get(module_name)
    if target is None:
        raise IntegrityError(
            f"the saved tokenizer is a {qualname} from {module_name!r}, which is not imported; "
            f"import it first (loading never imports modules named in files)"
        )
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type) or not callable(getattr(target, "load", None)):
        raise IntegrityError(f"{name} is not a tokenizer class with a load() method")
    return target


_DONE = object()
