"""A prefix KV cache: the keys and values of shared prompt prefixes, reused across requests.

Requests that start alike (a RAG system prompt, a few-shot template) make the
model compute the same keys and values for the same first tokens again and
again. :class:`PrefixCache` keeps them, so a later request only runs the model
over what follows its longest cached prefix.

How it is organised (the hash-of-blocks scheme of vLLM's automatic prefix
caching, Kwon et al., 2023, "Efficient Memory Management for Large Language
Model Serving with PagedAttention"):

* A prompt is cut into blocks of ``block_size`` tokens. Block ``i`` is named
  by a chained SHA-256 digest: of the model's fingerprint and the tokens of
  blocks ``0..i`` (each digest hashes its parent's and its own tokens), so a
  block is only ever found after the very same tokens, with the same model.
  Each entry also keeps its tokens and they are compared on every lookup:
  two prefixes whose digests collide are still told apart.
* The model's fingerprint covers its class, config, and each parameter's and
  buffer's name, shape, dtype, device, storage and version counter (which
  every in-place update such as an optimizer step or ``load_state_dict``
  advances), plus a token for the model object itself. A model changed in
  any of these ways gets a new fingerprint, and the entries of its old one are
  dropped the next time it is used: stale keys and values are never reused.
* Memory is bounded by ``max_bytes`` (the bytes of the cached tensors), with
  least-recently-used eviction. A lookup or store marks a chain's blocks used
  from its last block to its first, so a block is always more recently used
  than the blocks that continue it and eviction removes chains from their
  ends: no block is left unreachable behind an evicted parent.

The cached keys and values are those computed when the prefix was first seen;
the generator then runs the model over the rest of the prompt with them
(:func:`prefill`). The result is the same computation as without the cache,
up to float rounding of differently shaped matrix products (the tests check
that the tokens are identical).

Examples:
    >>> import torch
    >>> from genarch.models import GPT, TextGenerator
    >>> from genarch.schemas import TextRequest
    >>> class Bytes:
    ...     vocab_size = 256
    ...     def encode(self, text): return list(text.encode())
    ...     def decode(self, ids): return bytes(ids).decode(errors="replace")
    >>> _ = torch.manual_seed(0)
    >>> model = GPT(vocab_size=256, context_length=128, n_layer=1, n_head=2, n_embd=32)
    >>> cache = PrefixCache(max_bytes=10_000_000, block_size=16)
    >>> generator = TextGenerator(model, Bytes(), prefix_cache=cache)
    >>> system = "You answer questions about Python. Be brief. "
    >>> first = generator.generate(TextRequest(prompt=system + "What is a list?", temperature=0))
    >>> second = generator.generate(TextRequest(prompt=system + "What is a dict?", temperature=0))
    >>> cache.stats().hit_tokens  # both start with the same 55 bytes: 3 whole blocks reused
    48
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genarch.errors import InvalidInputError
from genarch.models.transformer import GPT, KVCache

__all__ = ["Prefilled", "PrefixCache", "PrefixCacheStats", "prefill"]


@dataclass(frozen=True)
class PrefixCacheStats:
    """What a :class:`PrefixCache` holds and how it has served so far.

    Attributes:
        entries: cached blocks.
        bytes: bytes of the cached key/value tensors.
        max_bytes: the budget.
        block_size: tokens per block.
        lookups: prompts looked up.
        hit_tokens: prompt tokens whose keys and values came from the cache.
        miss_tokens: prompt tokens the model had to compute.
        evictions: blocks removed to stay within the budget.
        invalidations: blocks dropped because their model changed.
    """

    entries: int
    bytes: int
    max_bytes: int
    block_size: int
    lookups: int
    hit_tokens: int
    miss_tokens: int
    evictions: int
    invalidations: int

    @property
    def hit_rate(self) -> float:
        """The share of looked-up prompt tokens served from the cache (0 when none)."""
        total = self.hit_tokens + self.miss_tokens
        return self.hit_tokens / total if total else 0.0


@dataclass
class _Block:
    namespace: str  # the model fingerprint the block belongs to
    parent: bytes | None  # the digest of the block before it
    tokens: tuple[int, ...]
    kv: Tensor  # (n_layer, 2, n_kv_head, block_size, head_dim)

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


class PrefixCache:
    """Keys and values of prompt prefixes, shared by the requests of one or more generators.

    Pass it to :class:`~genarch.models.TextGenerator` (``prefix_cache=``); it
    is safe to share between generators, models and threads.

    Args:
        max_bytes: the most bytes of cached key/value tensors to hold; the
            least recently used blocks are evicted beyond it.
        block_size: tokens per block: prefixes are reused in whole blocks.
            Smaller blocks reuse more of a partly shared prefix; larger ones
            make fewer entries.

    Raises:
        InvalidInputError: ``max_bytes`` or ``block_size`` is not a positive int.
    """

    def __init__(self, max_bytes: int, *, block_size: int = 16) -> None:
        for name, value in (("max_bytes", max_bytes), ("block_size", block_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
        self.max_bytes = max_bytes
        self.block_size = block_size
        self._blocks: OrderedDict[bytes, _Block] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._models: weakref.WeakKeyDictionary[nn.Module, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )  # model -> (its object token, its latest fingerprint)
        self._lock = threading.Lock()
        self._counts = {"lookups": 0, "hit": 0, "miss": 0, "evictions": 0, "invalidations": 0}

    def __repr__(self) -> str:
        return f"PrefixCache(max_bytes={self.max_bytes}, block_size={self.block_size})"

    def stats(self) -> PrefixCacheStats:
        """A snapshot of the cache's size and counters."""
        with self._lock:
            counts = self._counts
            return PrefixCacheStats(
                entries=len(self._blocks),
                bytes=self._bytes,
                max_bytes=self.max_bytes,
                block_size=self.block_size,
                lookups=counts["lookups"],
                hit_tokens=counts["hit"],
                miss_tokens=counts["miss"],
                evictions=counts["evictions"],
                invalidations=counts["invalidations"],
            )

    def clear(self) -> None:
        """Drop every cached block (the counters are kept)."""
        with self._lock:
            self._blocks.clear()
            self._bytes = 0

    # ------------------------------------------------------------- identity

    def fingerprint(self, model: GPT) -> str:
        """The model's current identity: equal only for the same object with unchanged weights.

        Calling it for a model whose weights changed since its last call drops
        the blocks of its old fingerprint.
        """
        with self._lock:
            token, previous = self._models.get(model, (uuid.uuid4().hex, ""))
            digest = hashlib.sha256(f"{token}|{type(model).__qualname__}|".encode())
            digest.update(model.config.model_dump_json().encode())
            for kind, tensors in (("p", model.named_parameters()), ("b", model.named_buffers())):
                for name, tensor in tensors:
                    digest.update(
                        f"|{kind}:{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tensor.device}:"
                        f"{tensor.data_ptr()}:{_version(tensor)}".encode()
                    )
            current = digest.hexdigest()
            if previous and previous != current:
                stale = [key for key, block in self._blocks.items() if block.namespace == previous]
                for key in stale:
                    self._bytes -= self._blocks.pop(key).nbytes
                self._counts["invalidations"] += len(stale)
            self._models[model] = (token, current)
            return current

    # --------------------------------------------------------- lookup, store

    def _chain(self, namespace: str, tokens: Sequence[int], blocks: int) -> list[bytes]:
        size, keys = self.block_size, []
        parent = hashlib.sha256(namespace.encode()).digest()
        for i in range(blocks):
            chunk = b"".join(t.to_bytes(4, "little") for t in tokens[i * size : (i + 1) * size])
            parent = hashlib.sha256(parent + chunk).digest()
            keys.append(parent)
        return keys

    def lookup(self, namespace: str, tokens: Sequence[int], *, limit: int) -> Tensor | None:
        """The cached keys and values of the longest cached whole-block prefix of ``tokens``
        that is at most ``limit`` tokens long: ``(n_layer, 2, n_kv_head, T, head_dim)``, or
        None. ``namespace`` is the model's :meth:`fingerprint`."""
        blocks = max(0, min(limit, len(tokens)) // self.block_size)
        keys = self._chain(namespace, tokens, blocks)
        found: list[Tensor] = []
        with self._lock:
            parent: bytes | None = None
            for i, key in enumerate(keys):
                block = self._blocks.get(key)
                chunk = tuple(tokens[i * self.block_size : (i + 1) * self.block_size])
                if block is None or block.parent != parent or block.tokens != chunk:
                    break
                if block.namespace != namespace:
                    break
                found.append(block.kv)
                parent = key
            self._touch(keys[: len(found)])
            hit = len(found) * self.block_size
            self._counts["lookups"] += 1
            self._counts["hit"] += hit
            self._counts["miss"] += len(tokens) - hit
        return torch.cat(found, dim=3) if found else None

    def store(self, namespace: str, tokens: Sequence[int], kv: Tensor) -> None:
        """Keep the keys and values ``kv (n_layer, 2, n_kv_head, T, head_dim)`` of ``tokens[:T]``,
        whole blocks only; blocks already cached are only marked used."""
        blocks = min(len(tokens), kv.shape[3]) // self.block_size
        keys = self._chain(namespace, tokens, blocks)
        size = self.block_size
        with self._lock:
            parent: bytes | None = None
            for i, key in enumerate(keys):
                if key not in self._blocks:
                    piece = kv[:, :, :, i * size : (i + 1) * size].clone()
                    block = _Block(
                        namespace, parent, tuple(tokens[i * size : (i + 1) * size]), piece
                    )
                    if block.nbytes > self.max_bytes:
                        break
                    self._blocks[key] = block
                    self._bytes += block.nbytes
                parent = key
            self._touch([key for key in keys if key in self._blocks])
            self._evict()

    def _touch(self, keys: list[bytes]) -> None:
        for key in reversed(keys):  # the chain's first block ends most recently used
            self._blocks.move_to_end(key)

    def _evict(self) -> None:
        while self._bytes > self.max_bytes:  # least recently used first: chains from their ends
            _, block = self._blocks.popitem(last=False)
            self._bytes -= block.nbytes
            self._counts["evictions"] += 1


def _version(tensor: Tensor) -> int:
    try:
        return int(tensor._version)
    except RuntimeError:  # an inference tensor keeps no version counter: it never changes
        return -1


# ------------------------------------------------------------------ prefill


@dataclass
class Prefilled:
    """The state of a decoding call after its prompts went through the model.

    Attributes:
        cache: the KV cache, ready for the first decoding step.
        logits: ``(B, V)`` float32 logits of each row's next token.
        key_mask: ``(B, S)`` booleans, True where a cache slot holds a real token;
            None when every slot does (then positions are the slots).
        lengths: ``(B,)`` the prompt lengths: the position of each row's next token.
    """

    cache: KVCache
    logits: Tensor
    key_mask: Tensor | None
    lengths: Tensor


def prefill(
    model: GPT, prompts: Sequence[Sequence[int]], steps: int, prefix_cache: PrefixCache | None
) -> Prefilled:
    """Run ``model`` over the prompts, reusing and filling ``prefix_cache`` when given.

    The cache's slots are laid out in two parts, each left-padded: the cached
    prefixes (``P`` slots, ``P`` the longest cached prefix), then the tokens
    the model runs over (``R`` slots, the most any row has left), then
    ``steps - 1`` slots for the decoded tokens. Every token keeps the
    position it has in its prompt, and a mask hides the empty slots, so each
    row is computed as if it were alone. Without a prefix cache ``P`` is 0 and
    this is the usual left-padded batch.

    Call it in inference mode, with the model in eval mode.
    """
    device = model.wte.weight.device
    namespace = prefix_cache.fingerprint(model) if prefix_cache is not None else ""
    reused: list[Tensor | None] = [None] * len(prompts)
    if prefix_cache is not None:  # at least the last token is run, for its logits
        reused = [prefix_cache.lookup(namespace, p, limit=len(p) - 1) for p in prompts]
    cached = [0 if kv is None else int(kv.shape[3]) for kv in reused]
    rest = [len(p) - c for p, c in zip(prompts, cached, strict=True)]
    before, width, batch = max(cached), max(rest), len(prompts)  # P and R
    idx = torch.zeros((batch, width), dtype=torch.long, device=device)
    key_mask = torch.ones((batch, before + width + steps), dtype=torch.bool, device=device)
    positions = torch.zeros((batch, width), dtype=torch.long, device=device)
    cache = model.new_cache(batch, before + width + steps - 1)  # the last tokens are never fed
    for i, (prompt, c, r, kv) in enumerate(zip(prompts, cached, rest, reused, strict=True)):
        idx[i, width - r :] = torch.tensor(prompt[c:], device=device)
        key_mask[i, : before - c] = False
        key_mask[i, before : before + width - r] = False
        positions[i] = (torch.arange(width, device=device) - (width - r) + c).clamp(min=0)
        # Empty slots are masked, but must hold numbers: NaN garbage times a zero weight is NaN.
        cache.data[:, :, i, :, : before - c] = 0.0
        if kv is not None:
            cache.data[:, :, i, :, before - c : before] = kv
    cache.length = before
    masked = not bool(key_mask.all())
    hidden = model.hidden_states(
        idx,
        positions=positions if masked else None,
        cache=cache,
        key_mask=key_mask if masked else None,
    )
    logits = model.lm_head(hidden[:, -1]).float()  # (B, V)
    if prefix_cache is not None:
        for i, (prompt, c, r) in enumerate(zip(prompts, cached, rest, strict=True)):
            if len(prompt) // prefix_cache.block_size * prefix_cache.block_size <= c:
                continue  # nothing new to keep
            row = cache.data[:, :, i]  # (n_layer, 2, nkv, S, hs)
            kv = torch.cat(
                [
                    row[:, :, :, before - c : before],
                    row[:, :, :, before + width - r : before + width],
                ],
                dim=3,
            )
            prefix_cache.store(namespace, prompt, kv)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    return Prefilled(cache, logits, key_mask if masked else None, lengths)
