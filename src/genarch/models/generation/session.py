"""Continuous batching: :class:`TextDecodingSession`, which requests join and leave between steps.

:meth:`TextGenerator.generate_batch <genarch.models.TextGenerator.generate_batch>`
decodes a fixed set of rows: one that finishes early stays (masked) until the
last one is done, and nothing can join. A session instead keeps one KV cache
for up to ``max_rows`` rows and is advanced one token per :meth:`~TextDecodingSession.step`;
:meth:`~TextDecodingSession.join` adds a request between steps and a row that
finishes leaves at once, so its row is free for the next request. A server
(:class:`~genarch.deploy.GenerationService`) keeps one session and loops.

**Layout.** The cache is one tensor ``(n_layer, 2, rows, n_kv_head, columns,
head_dim)``:

* The active rows are packed at the front of the batch dimension; when a row
  leaves, the last row moves into its place (one row's copy), so each step
  runs the model on exactly the active rows.
* Every row writes its next token to the same column ``t``. A row's keys and
  values therefore always fill the contiguous columns ``[t - fed, t)``, where
  ``fed`` counts the tokens the model has seen for it; its attention mask and
  its positions (``fed``, the position it would have alone) follow from that.
* A joining request's prompt is run through the model together with the
  others joining at the same step (:func:`~genarch.models.generation.prefix_cache.prefill`,
  which reuses the generator's prefix cache) and its keys and values are
  copied into the columns that end at ``t``. A prompt longer than ``t`` first
  moves every row right. The prompt is run whole, not in chunks, so the rows
  already decoding wait for it during that one step.
* Every step's attention reads columns ``0 .. t`` (masked per row), so the
  columns before the longest row are waste. Once they outnumber the columns
  that row fills (and 64), every row moves left so that the longest row starts
  at column 0: one copy for all rows, which keeps attention within about twice
  what it needs. When ``t`` reaches the last allocated column, the cache
  doubles (up to twice the context) or, once it is that wide, the rows move
  left the same way.

Each row keeps its own sampler settings, ``torch.Generator`` and stop
condition, so its tokens are those ``generate`` gives it alone (up to float
rounding), whichever rows share its steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genarch.errors import InvalidInputError
from genarch.models.decode_step import StepFunction, decoding, step_function
from genarch.models.generation.prefix_cache import prefill
from genarch.models.generation.rows import DecodingRow, record_tokens
from genarch.models.generation.sampling import TokenSampler
from genarch.models.transformer import KVCache
from genarch.protocols import RowUpdate
from genarch.schemas import TextRequest, TextResult

if TYPE_CHECKING:  # the generator makes sessions: it imports this module
    from genarch.models.generation.generator import TextGenerator

__all__ = ["TextDecodingSession"]

_FIRST_COLUMNS = 64  # the cache's first width; it doubles as rows need more


@dataclass
class _Row:
    """One request in the session: its id, its progress and its random generator."""

    id: int
    state: DecodingRow
    generator: torch.Generator
    fed: int = 0  # tokens the model has seen for this row: its keys fill [t - fed, t)


class TextDecodingSession:
    """A :class:`~genarch.protocols.DecodingSession` over a :class:`~genarch.models.TextGenerator`.

    Made by :meth:`TextGenerator.open_session <genarch.models.TextGenerator.open_session>`;
    see the module docstring for the cache layout. Not thread-safe: one
    thread joins and steps.

    Args:
        generator: the model, tokenizer and prefix cache to decode with.
        max_rows: the most requests decoded together.

    Examples:
        >>> import torch
        >>> from genarch.data import ByteTokenizer
        >>> from genarch.models import GPT, GPTConfig, TextGenerator
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig(vocab_size=257, context_length=64, n_layer=1, n_head=2, n_embd=32))
        >>> generator = TextGenerator(model, ByteTokenizer())
        >>> session = generator.open_session(max_rows=4)
        >>> short = session.join(TextRequest(prompt="Hi", max_new_tokens=2, seed=1))
        >>> long = session.join(TextRequest(prompt="Hello", max_new_tokens=5, seed=2))
        >>> finished = {}
        >>> while session.active_rows:
        ...     finished |= {u.row: u.result for u in session.step() if u.result is not None}
        >>> finished[long] == generator.generate(TextRequest(prompt="Hello", max_new_tokens=5, seed=2))
        True
    """

    def __init__(self, generator: TextGenerator, max_rows: int) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidInputError(f"max_rows must be a positive int, got {max_rows!r}")
        self._owner = generator
        self.max_rows = max_rows
        model = generator.model
        self._model = model
        self._context = model.config.context_length
        self._max_columns = 2 * self._context
        self._vocab = model.config.vocab_size
        self._device = model.wte.weight.device
        self._rows: list[_Row] = []  # the active rows, in slot order
        self._joining: list[_Row] = []  # joined since the last step, not yet prefilled
        self._next_id = 0
        self._data: Tensor | None = None  # the cache (n_layer, 2, max_rows, nkv, columns, hs)
        self._t = 0  # the column the next token of every row is written to
        self._logits: Tensor | None = None  # (rows, V): each active row's next-token logits
        self._seen: Tensor | None = None  # (max_rows, V) for the penalties, when a row has any
        self._counts: Tensor | None = None
        self._sampler: TokenSampler | None = None  # rebuilt whenever the rows change
        self._step: StepFunction | None = None  # made when the session wakes (model in eval)

    def __repr__(self) -> str:
        return f"TextDecodingSession(active_rows={self.active_rows}, max_rows={self.max_rows})"

    @property
    def active_rows(self) -> int:
        """Rows joined and not yet finished (including those joined since the last step)."""
        return len(self._rows) + len(self._joining)

    @property
    def free_rows(self) -> int:
        """How many more requests can join now."""
        return self.max_rows - self.active_rows

    # ------------------------------------------------------------------ rows

    def join(self, request: TextRequest, *, generator: torch.Generator | None = None) -> int:
        """Add ``request``; its decoding starts at the next :meth:`step`. Returns its row id.

        Args:
            request: the prompt and sampling settings.
            generator: draw samples from this ``torch.Generator`` instead of
                one seeded from ``request.seed``.

        Raises:
            InvalidInputError: an invalid request (as
                :meth:`TextGenerator.generate <genarch.models.TextGenerator.generate>`),
                or no free row.
        """
        if self.free_rows <= 0:
            raise InvalidInputError(
                f"the session's {self.max_rows} rows are all busy; step until one finishes"
            )
        owner = self._owner
        prepared = owner._prepare(request)
        state = owner._rows([prepared])[0]
        row = _Row(self._next_id, state, owner._generators([prepared[0]], generator)[0])
        self._next_id += 1
        self._joining.append(row)
        return row.id

    def cancel(self, row: int) -> None:
        """Drop an unfinished row; unknown or finished ids are ignored."""
        self._joining = [r for r in self._joining if r.id != row]
        for slot, active in enumerate(self._rows):
            if active.id == row:
                with torch.inference_mode():  # the cache is an inference tensor
                    self._leave([slot])
                return

    def close(self) -> None:
        """Drop every row and release the cache."""
        self._rows, self._joining = [], []
        self._release()

    def _release(self) -> None:
        self._data = self._logits = self._seen = self._counts = self._sampler = None
        self._step = None
        self._t = 0

    # ------------------------------------------------------------------ steps

    def step(self) -> list[RowUpdate[str, TextResult]]:
        """Decode one token for every row: returns one update per row that took part.

        Rows joined since the last step are prefilled first (together). A row
        that finishes (its stop condition, ``max_new_tokens`` or the end of
        the context) gets its result in its update and leaves the session.
        """
        updates: list[RowUpdate[str, TextResult]] = []
        with decoding(self._model):
            if self._joining:
                updates += self._admit()
            if not self._rows:
                return updates
            assert self._logits is not None
            tokens = self._sample(self._logits)
            finished: list[int] = []
            for slot, row in enumerate(self._rows):
                piece = row.state.detokenizer.ready()
                if row.state.finish_reason is None:
                    updates.append(RowUpdate(row.id, piece))
                    continue
                piece += row.state.detokenizer.flush()
                updates.append(RowUpdate(row.id, piece, row.state.result()))
                finished.append(slot)
            if finished:
                keep = [slot for slot in range(len(self._rows)) if slot not in finished]
                tokens = tokens[keep]
                self._leave(finished)
            if self._rows:
                self._logits = self._feed(tokens)
        return updates

    def _sample(self, logits: Tensor) -> Tensor:
        """One token per active row from its logits; recorded in the rows and the penalty counts."""
        assert self._sampler is not None
        states = [row.state for row in self._rows]
        logits = self._owner.next_token_logits(logits, states)
        rows = len(self._rows)
        seen = self._seen[:rows] if self._seen is not None else None
        counts = self._counts[:rows] if self._counts is not None else None
        tokens = self._sampler(logits, seen, counts)
        top = max((r.request.logprobs or 0 for r in states), default=0)
        wants_logprobs = any(r.request.logprobs is not None for r in states)
        record_tokens(states, tokens, logits if wants_logprobs else None, top)
        if counts is not None and seen is not None:
            counts.scatter_add_(1, tokens[:, None], torch.ones_like(counts[:, :1]))
            seen.scatter_(1, tokens[:, None], True)
        return tokens

    def _feed(self, tokens: Tensor) -> Tensor:
        """Run the model on each row's new token at column ``t``; the logits of the next."""
        assert self._data is not None
        assert self._step is not None
        self._make_room()
        rows, t = len(self._rows), self._t
        fed = torch.tensor([row.fed for row in self._rows], device=self._device)
        columns = torch.arange(t + 1, device=self._device)
        key_mask = columns[None, :] >= (t - fed)[:, None]  # each row's span [t - fed, t]
        cache = KVCache(self._data.narrow(2, 0, rows), length=t)
        logits = self._step(tokens, cache, fed, key_mask).float()
        self._t = t + 1
        for row in self._rows:
            row.fed += 1
        return logits

    def _admit(self) -> list[RowUpdate[str, TextResult]]:
        """Prefill the rows joined since the last step and give them slots."""
        joining, self._joining = self._joining, []
        done = [row for row in joining if row.state.finish_reason is not None]  # max_new_tokens=0
        updates = [RowUpdate(row.id, "", row.state.result()) for row in done]
        joining = [row for row in joining if row.state.finish_reason is None]
        if not joining:
            return updates
        prompts = [row.state.prompt_ids for row in joining]
        state = prefill(self._model, prompts, 1, self._owner.prefix_cache)
        longest = max(len(p) for p in prompts)
        if self._data is None:
            self._allocate(max(_FIRST_COLUMNS, 2 * longest))
        assert self._data is not None
        if longest > self._t:  # room on the left for the longest prompt: move every row right
            self._shift(longest - self._t)
        width = state.cache.max_length
        first = len(self._rows)
        for i, (row, prompt) in enumerate(zip(joining, prompts, strict=True)):
            kv = state.cache.data[:, :, i]  # (n_layer, 2, nkv, width, hs)
            if state.key_mask is not None:  # the real tokens, wherever the prefill put them
                kv = kv[:, :, :, state.key_mask[i, :width]]
            slot, size = first + i, len(prompt)
            self._data[:, :, slot, :, self._t - size : self._t] = kv
            row.fed = size
            self._reset_penalties(slot, row.state.request, prompt)
        self._rows += joining
        self._logits = (
            state.logits if self._logits is None else torch.cat([self._logits, state.logits])
        )
        self._rebuild_sampler()
        return updates

    def _leave(self, slots: Sequence[int]) -> None:
        """Remove the rows in ``slots``, moving the last rows into their places."""
        keep = [slot for slot in range(len(self._rows)) if slot not in set(slots)]
        if self._data is not None:
            for new, old in enumerate(keep):
                if new != old:
                    self._data[:, :, new] = self._data[:, :, old]
                    for table in (self._seen, self._counts):
                        if table is not None:
                            table[new] = table[old]
        if self._logits is not None:
            self._logits = self._logits[keep]
        self._rows = [self._rows[slot] for slot in keep]
        if self._rows:
            self._rebuild_sampler()
        elif not self._joining:
            self._release()  # idle: hold no memory

    # ----------------------------------------------------------------- memory

    def _allocate(self, columns: int) -> None:
        config = self._model.config
        weight = self._model.wte.weight
        columns = min(columns, self._max_columns)
        shape = (config.n_layer, 2, self.max_rows, config.kv_heads, columns, config.head_dim)
        # Zeros, not empty: masked slots are multiplied by zero weights, and NaN garbage would
        # turn that into NaN.
        self._data = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        self._t = 0
        # Made here, when an idle session wakes, not once per session: the step function
        # holds the model's parameter tensors, and a long-lived session should see a model
        # whose layers were replaced between uses (see decode_step).
        self._step = step_function(self._model)

    def _widen(self, needed: int) -> None:
        """Make the cache at least ``needed`` columns wide (at least doubling it)."""
        assert self._data is not None
        columns = self._data.shape[4]
        if needed <= columns:
            return
        grown = min(self._max_columns, max(2 * columns, needed))
        data = self._data.new_zeros((*self._data.shape[:4], grown, self._data.shape[5]))
        data[..., : self._t, :] = self._data[..., : self._t, :]
        self._data = data

    def _make_room(self) -> None:
        """Make column ``t`` exist for the next token: widen the cache, or move the rows left.

        Also moves the rows left once the columns before the longest row (which every
        step's attention still reads, masked) outnumber the columns it fills: one copy
        of the cache, so attention never reads more than about twice what it needs.
        """
        assert self._data is not None
        longest = max(row.fed for row in self._rows)
        if self._t - longest > max(longest, _FIRST_COLUMNS):
            self._shift(longest - self._t)
        if self._t < self._data.shape[4]:
            return
        if self._data.shape[4] < self._max_columns:
            self._widen(self._t + 1)
            return
        # Every active row has seen at most context - 1 tokens (one more would end it), so
        # after this move t < context and the next context columns are free.
        self._shift(longest - self._t)

    def _shift(self, by: int) -> None:
        """Move every row's keys and values ``by`` columns (right if positive), and ``t`` with them."""
        assert self._data is not None
        if by == 0:
            return
        t = self._t
        if by > 0:
            self._widen(t + by)
        start = max(0, -by)  # the columns before ``start`` hold no active row's keys
        moved = self._data[..., start:t, :].clone()  # the ranges overlap
        self._data[..., start + by : t + by, :] = moved
        self._t = t + by

    # -------------------------------------------------------------- sampling

    def _reset_penalties(self, slot: int, request: TextRequest, prompt: list[int]) -> None:
        """Start the penalty counts of a new row (only rows with penalties read them)."""
        penalised = (
            request.repetition_penalty != 1 or request.presence_penalty or request.frequency_penalty
        )
        if penalised and self._seen is None:
            self._seen = torch.zeros((self.max_rows, self._vocab), dtype=torch.bool)
            self._counts = torch.zeros((self.max_rows, self._vocab))
            self._seen, self._counts = self._seen.to(self._device), self._counts.to(self._device)
        if self._seen is not None and self._counts is not None:
            self._seen[slot] = False
            self._seen[slot, prompt] = True
            self._counts[slot] = 0.0

    def _rebuild_sampler(self) -> None:
        self._sampler = TokenSampler(
            [row.state.request for row in self._rows],
            [row.generator for row in self._rows],
            self._device,
        )
