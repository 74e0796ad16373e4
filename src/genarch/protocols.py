"""The contract: one protocol per layer of a generative system.

Protocols are structural (:class:`typing.Protocol`): any object with the right
methods is a :class:`DataProcessor`, a :class:`Generator`, ... — nothing has to
inherit from genarch. ``isinstance`` against these protocols only checks that
the method *names* exist; :mod:`genarch.testing` checks the behaviour each
docstring promises.

Layer map::

    DataProcessor[In, Out]   data processing       stream of In  -> stream of Out
    FeatureExtractor[In]     feature extraction    batch of In   -> (N, dim) float tensor
    Generator[Req, Res]      generative model      request       -> result
    Optimizer[Batch]         training              batch         -> StepReport (one update)
    FeedbackLoop             feedback              feedback      -> durable, queryable store
    Deployer                 deployment            component     -> artefact -> verified -> Endpoint
    PromptTemplate, Retriever, VectorStore         orchestration

Optional capabilities are small sub-protocols (:class:`StreamingGenerator`,
:class:`ContinuousBatchingGenerator`, :class:`LatentGenerator`,
:class:`ScoringGenerator`, :class:`ConditionalGenerator`, :class:`Fittable`), so a model implements what
it can and callers check with ``isinstance`` before using a capability.

Errors: every method documented here raises
:class:`~genarch.errors.InvalidInputError` (or another
:class:`~genarch.errors.GenarchError`) for input it cannot accept — never a
bare ``AttributeError``, ``IndexError`` or a pydantic error.

Why one module past the ~500-line guide: this file *is* the contract, and a
reader (or an implementer of their own component) should find every protocol
and its promises in one place, as the layer map above lists them. It holds no
logic beyond :func:`is_conditional`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

import torch
from pydantic import BaseModel

from genarch._deprecated import renamed_names
from genarch.registry import Registry
from genarch.schemas import (
    ArtifactManifest,
    Evaluation,
    Feedback,
    FeedbackFilter,
    FeedbackPage,
    Hit,
    Metadata,
    MetadataValue,
    ScoredChunk,
    StepReport,
    StoredFeedback,
)

__all__ = [
    "ConditionalGenerator",
    "Configurable",
    "ContinuousBatchingGenerator",
    "DataProcessor",
    "DecodingSession",
    "Deployer",
    "Endpoint",
    "Evaluator",
    "FeatureExtractor",
    "FeedbackLoop",
    "Fittable",
    "Generator",
    "HealthStatus",
    "LatentGenerator",
    "Optimizer",
    "Persistable",
    "PromptTemplate",
    "Retriever",
    "RowUpdate",
    "ScoringGenerator",
    "StreamingGenerator",
    "Tokenizer",
    "TrainingObjective",
    "VectorStore",
    "is_conditional",
]

In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)
Req_contra = TypeVar("Req_contra", contravariant=True)
Res_co = TypeVar("Res_co", covariant=True)
Batch_contra = TypeVar("Batch_contra", contravariant=True)
Sample_contra = TypeVar("Sample_contra", contravariant=True)
Piece_co = TypeVar("Piece_co", covariant=True)
Result_contra = TypeVar("Result_contra", contravariant=True)

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------ cross-cutting


@runtime_checkable
class Persistable(Protocol):
    """Saves itself to a directory and loads back an equal object.

    Contract:
        * ``save(d)`` writes weights as safetensors and everything else as JSON —
          never pickle — and writes atomically: a crash mid-save leaves any
          previous content of ``d`` readable.
        * ``type(obj).load(d)`` returns an object whose outputs equal the
          original's for the same inputs and seeds.
        * ``load`` raises :class:`~genarch.errors.NotFoundError` when ``d`` holds
          nothing saved and :class:`~genarch.errors.IntegrityError` when it holds
          something corrupt or saved by another kind of component.
    """

    def save(self, directory: PathLike) -> None: ...

    @classmethod
    def load(cls, directory: PathLike) -> Self: ...


@runtime_checkable
class Configurable(Protocol):
    """Described completely by a frozen pydantic config.

    Contract: ``type(obj).from_config(obj.config)`` builds an equivalent object
    (with fresh, untrained weights for models). ``from_config`` accepts the
    config object or a mapping and raises :class:`~genarch.errors.ConfigError`
    for unknown or out-of-range fields.
    """

    @property
    def config(self) -> BaseModel: ...

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self: ...


# ------------------------------------------------------------------ data processing


@runtime_checkable
class DataProcessor(Protocol[In_contra, Out_co]):
    """Turns a stream of records into another stream of records.

    ``process`` takes any iterable (a list, a generator, a file reader) and
    returns a *lazy* iterator: it reads input only as output is requested, so
    corpora larger than memory stream through. One call is one stream: a
    processor may keep state *within* a call (a deduplicator remembers what it
    has seen) but never *between* calls — processing the same input twice gives
    the same output.

    A processor may drop records (filters), expand them (chunkers) or map them
    one to one (cleaners). The element types are read from the annotations of
    ``process`` (``Iterable[In]`` and ``Iterator[Out]``) or, when present, from
    ``input_type`` / ``output_type`` attributes; :class:`~genarch.Pipeline`
    uses them to refuse stages that do not fit.

    Raises:
        InvalidInputError: when an element is of the wrong type or malformed
            (raised while iterating, naming the element's position).
    """

    def process(self, items: Iterable[In_contra]) -> Iterator[Out_co]: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and back.

    Contract: ``decode(encode(text)) == text`` for every string; ids are in
    ``range(vocab_size)``; deterministic.
    """

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


# ---------------------------------------------------------------- feature extraction


@runtime_checkable
class FeatureExtractor(Protocol[In_contra]):
    """Maps a batch of inputs to fixed-size feature vectors.

    ``extract(items)`` returns a float32 tensor of shape ``(len(items), dim)``
    on the CPU unless the extractor was configured for another device. Row ``i`` depends only on
        ``items[i]``: extracting a batch equals extracting each item alone (up
        to float rounding), and the same items always give the same features.
        An empty batch gives a ``(0, dim)`` tensor.

    Raises:
        InvalidInputError: an item of the wrong type.
    """

    @property
    def dim(self) -> int: ...

    def extract(self, items: Sequence[In_contra]) -> torch.Tensor: ...


@runtime_checkable
class Fittable(Protocol[In_contra]):
    """Learns from data before use (vocabularies, IDF weights, scalers).

    ``fit`` returns the fitted object itself so calls chain. Fitting twice on
    the same data gives the same fitted state.
    """

    def fit(self, items: Sequence[In_contra]) -> Self: ...


# ---------------------------------------------------------------- generative model


@runtime_checkable
class Generator(Protocol[Req_contra, Res_co]):
    """A generative model behind one request/result interface.

    The same protocol serves every family: genarch's text generator
    (``TextRequest`` -> ``TextResult``), its image VAE, GAN and diffusion
    models (``ImageRequest`` -> ``ImageResult``) and its tabular
    :class:`~genarch.models.BayesianNetwork` (``TabularRequest`` ->
    ``TabularResult``, conditioned on any variable) implement it.

    Contract:
        * Determinism: a request that carries a seed gives the same result every
          time, whatever else was generated before and whatever the global RNG
          state is. Randomness comes from the request, never from hidden state.
        * ``generate_batch(requests)`` equals ``[generate(r) for r in requests]``
          (up to float rounding); implementations batch for speed.
        * A request of the wrong type, or with values the model cannot serve
          (an unknown class label, a prompt longer than the context), raises
          :class:`~genarch.errors.InvalidInputError` before any work is done.
    """

    def generate(self, request: Req_contra) -> Res_co: ...

    def generate_batch(self, requests: Sequence[Req_contra]) -> Sequence[Res_co]: ...


@runtime_checkable
class StreamingGenerator(Generator[Req_contra, Res_co], Protocol[Req_contra, Res_co, Piece_co]):
    """A generator that can also yield its output incrementally.

    ``stream(request)`` yields pieces (for text: strings that never split a
    multi-byte character) whose concatenation is the output ``generate`` gives
    for the same request.
    """

    def stream(self, request: Req_contra) -> Iterator[Piece_co]: ...


@dataclass(frozen=True)
class RowUpdate(Generic[Piece_co, Res_co]):
    """What one step of a :class:`DecodingSession` produced for one of its rows.

    Attributes:
        row: the id :meth:`DecodingSession.join` gave the request.
        piece: the output that became final during this step (for text, a
            string that never splits a character; possibly empty).
        result: the whole result, set once, at the step where the row
            finished; the row has then left the session.
    """

    row: int
    piece: Piece_co
    result: Res_co | None = None


@runtime_checkable
class DecodingSession(Protocol[Req_contra, Res_co, Piece_co]):
    """Decoding advanced one step at a time, with rows joining and leaving between steps.

    The step-level interface continuous batching needs: a server keeps one
    session, joins each request (:meth:`join`) as soon as a row is free, and calls
    :meth:`step` in a loop; a row that finishes leaves at once and its row is
    free for the next request, while the others go on.

    Contract:
        * A request decoded in a session gives the result ``generate`` gives
          for it alone (up to float rounding), whoever shares its steps.
        * ``join`` validates the request (raising
          :class:`~genarch.errors.InvalidInputError` before any work, or when
          no row is free) and returns the row's id; the work starts at the
          next :meth:`step`.
        * Every :meth:`step` returns one :class:`RowUpdate` per row that took
          part; the pieces of a row, joined, are its result's output.
        * ``cancel(row)`` drops an unfinished row (unknown ids are ignored);
          ``close()`` drops every row and releases the memory.
    """

    @property
    def free_rows(self) -> int: ...

    @property
    def active_rows(self) -> int: ...

    def join(self, request: Req_contra) -> int: ...

    def step(self) -> Sequence[RowUpdate[Piece_co, Res_co]]: ...

    def cancel(self, row: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ContinuousBatchingGenerator(
    Generator[Req_contra, Res_co], Protocol[Req_contra, Res_co, Piece_co]
):
    """A generator that can decode in a :class:`DecodingSession` (continuous batching).

    :class:`~genarch.deploy.GenerationService` uses it when a generator has
    it: requests then join a running batch and leave it as they finish.
    """

    def open_session(self, max_rows: int) -> DecodingSession[Req_contra, Res_co, Piece_co]: ...


@runtime_checkable
class LatentGenerator(Protocol):
    """A generator with an explicit, invertible latent space: genarch's VAE.

    ``encode`` maps data ``(N, ...)`` to latents ``(N, latent_dim...)``
    (deterministically: the posterior mean for a VAE); ``decode`` maps latents
    back to data; ``interpolate`` returns ``steps`` latents from ``start`` to
    ``end`` inclusive, linearly or spherically.

    A GAN decodes latents and interpolates but has no encoder, so it is not a
    ``LatentGenerator``; genarch's diffusion model has no latent methods.
    """

    @property
    def latent_shape(self) -> tuple[int, ...]: ...

    def encode(self, data: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def interpolate(
        self, start: torch.Tensor, end: torch.Tensor, steps: int, *, spherical: bool = False
    ) -> torch.Tensor: ...


@runtime_checkable
class ScoringGenerator(Protocol[Sample_contra]):
    """A generator that scores samples: log-probabilities (or a documented bound).

    Returns a float64 tensor of shape ``(len(samples),)``: the exact
    log-likelihood for genarch's text generator (sum over tokens) and for its
    Bayesian network (rows of states; a row with missing values scores the
    marginal probability of the values it gives), the ELBO (a seeded lower bound of it) for the VAE.
    """

    def log_prob(self, samples: Sequence[Sample_contra]) -> torch.Tensor: ...


@runtime_checkable
class ConditionalGenerator(Protocol):
    """A generator that says which named values its requests may be conditioned on.

    ``conditions`` maps each condition a request may set (``"label"``, a
    column name) to the values it accepts, so callers can build valid requests
    and show users their choices. Requests outside these values raise
    :class:`~genarch.errors.InvalidInputError`.

    Conditioning is explicit: the property is always present, and an empty
    mapping means the model (for example a VAE trained without labels) is
    unconditional. Ask :func:`is_conditional`, not ``isinstance`` — since
    Python 3.12 ``isinstance`` on a runtime-checkable protocol only looks
    for the attribute, it cannot tell a model with no conditions apart.
    """

    @property
    def conditions(self) -> Mapping[str, Sequence[str]]: ...


def is_conditional(generator: object) -> bool:
    """Whether ``generator`` accepts at least one condition in its requests.

    Examples:
        >>> class Unconditional:
        ...     conditions = {}
        >>> class Labelled:
        ...     conditions = {"label": ["cat", "dog"]}
        >>> is_conditional(Unconditional()), is_conditional(Labelled()), is_conditional(object())
        (False, True, False)
    """
    return bool(getattr(generator, "conditions", None))


__getattr__ = renamed_names(__name__, {"Conditional": (__name__, "ConditionalGenerator")})


# ------------------------------------------------------------ training & optimisation


@runtime_checkable
class Optimizer(Protocol[Batch_contra]):
    """Improves a model one batch at a time: the training & optimisation layer.

    One ``step`` may update several players in turn — a GAN's discriminator
    then its generator — or one model beside a frozen one that gets no update
    (a reference model, as preference optimisation needs); the
    :class:`~genarch.schemas.StepReport` has one loss per player.

    Contract:
        * ``state_dict()`` captures *everything* the next steps depend on: the
          parameters, optimizer moments, step count and RNG state. A fresh
          optimizer that loads it continues bit-identically (exact resume).
        * With the same initial state and batches, steps give the same reports.
        * A batch it cannot use raises :class:`~genarch.errors.InvalidInputError`
          without changing any parameter.
    """

    def step(self, batch: Batch_contra) -> StepReport: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class TrainingObjective(Protocol[Batch_contra]):
    """What to optimise, separated from how (the :class:`Optimizer`).

    ``players()`` returns the modules that are updated, in update order — one
    for LM, VAE and diffusion training, two for a GAN. Anything else the
    objective holds (a frozen reference model, an EMA copy) is not a player and
    gets no gradient step. ``loss(player, batch)`` computes that player's
    scalar loss on the batch; it is called after the previous player's update,
    which is what makes alternating two-player training work.
    """

    def players(self) -> Mapping[str, torch.nn.Module]: ...

    def loss(self, player: str, batch: Batch_contra) -> torch.Tensor: ...


# ------------------------------------------------------------ feedback & improvement


@runtime_checkable
class FeedbackLoop(Protocol):
    """Stores ratings, corrections and preferences durably and serves them back.

    Implementations: :class:`genarch.feedback.SQLiteFeedbackStore`.

    Contract:
        * ``record(feedback)`` stores one :data:`~genarch.schemas.Feedback`
          record and returns its id (a non-empty, unique ``str``); once it
          returns, the feedback survives a crash of the process. Anything that
          is not a valid feedback record, or that exceeds the store's documented
          limits, raises :class:`~genarch.errors.InvalidInputError` and stores
          nothing.
        * ``get(id)`` returns the :class:`~genarch.schemas.StoredFeedback` with
          exactly what was recorded — except that a store may replace
          ``feedback.user`` with a stable pseudonym (the same for one user,
          documented by the store). Unknown ids raise
          :class:`~genarch.errors.NotFoundError`.
        * ``query(filters, limit=, cursor=)`` returns one
          :class:`~genarch.schemas.FeedbackPage` of the records that
          ``filters`` (a :class:`~genarch.schemas.FeedbackFilter`, ``None`` for
          all) selects, in the order they were recorded, at most ``limit``
          (1 to :data:`~genarch.schemas.MAX_PAGE_SIZE`) of them; passing the
          page's ``next_cursor`` back reads on (keyset pagination: following
          the cursors to the end yields every match exactly once).
          A ``limit`` out of range or a cursor the store did not make raises
          :class:`~genarch.errors.InvalidInputError`.
        * ``scan(filters)`` iterates over every match, in the same order.
        * ``forget_user(user)`` deletes every record of that user (right to
          erasure) and returns how many went; afterwards no query, ``get`` or
          export shows any of them.
        * ``close()`` releases the store; a store is a context manager that
          closes on exit. Reopening the same storage gives back everything
          recorded before.

    Turning stored feedback into preference pairs is policy, not storage:
    :func:`genarch.feedback.preference_pairs`.
    """

    def record(self, feedback: Feedback) -> str: ...

    def get(self, feedback_id: str) -> StoredFeedback: ...

    def query(
        self,
        filters: FeedbackFilter | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> FeedbackPage: ...

    def scan(self, filters: FeedbackFilter | None = None) -> Iterator[StoredFeedback]: ...

    def forget_user(self, user: str) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class Evaluator(Protocol[Req_contra, Result_contra]):
    """Scores one generated result for its request (relevance, realism, ...).

    Implementations: the evaluators of :mod:`genarch.evaluation` (BLEU,
    ROUGE-L, exact match, token F1, perplexity, distinct-n, self-BLEU,
    groundedness, answer relevance, a toxicity flag); each documents what its
    ``request`` and ``result`` are.

    Contract (checked by :func:`genarch.testing.check_evaluator`):
        * ``evaluate`` returns an :class:`~genarch.schemas.Evaluation` whose
          scores are finite floats, higher is better unless documented.
        * Deterministic: the same request and result always get the same
          scores, whatever was evaluated before and whatever the global RNGs.
        * Every input gets the same score names, so scores can be aggregated.
        * Input it cannot score raises :class:`~genarch.errors.InvalidInputError`
          (or another :class:`~genarch.errors.GenarchError`) naming the argument.
    """

    def evaluate(self, request: Req_contra, result: Result_contra) -> Evaluation: ...


# ---------------------------------------------------------- deployment & integration


@runtime_checkable
class HealthStatus(Protocol):
    """What :meth:`Endpoint.health` reports: at least whether it can serve.

    ``ready`` is ``True`` while the endpoint accepts requests and ``False``
    once it is closed (or, for a server, while it loads or drains); ``status``
    says the same in a word (``"ready"``, ``"closed"``, ...). Implementations
    return a record with more fields (:class:`genarch.deploy.EndpointHealth`).
    """

    @property
    def ready(self) -> bool: ...

    @property
    def status(self) -> str: ...


@runtime_checkable
class Endpoint(Protocol[Req_contra, Res_co]):
    """A served component: takes requests, returns results, can be closed.

    Implementations: :class:`genarch.deploy.LocalEndpoint` (in-process, what
    :meth:`genarch.deploy.LocalDeployer.serve` returns).

    Contract:
        * ``invoke(request)`` gives what the served component gives for the
          request (for a :class:`Generator`, ``generate``; for a
          :class:`FeatureExtractor`, ``extract`` of a batch of items).
        * ``invoke_batch(requests)`` equals ``[invoke(r) for r in requests]``
          (up to float rounding); every request is checked before any work.
        * ``health()`` reports ``ready=True`` until ``close()``, ``False`` after.
        * ``close()`` releases the component and may be called again; after
          it, ``invoke`` and ``invoke_batch`` raise
          :class:`~genarch.errors.InvalidInputError` (like a closed file's
          ``ValueError``). An endpoint is a context manager that closes on exit.
        * A request the component refuses raises the component's
          :class:`~genarch.errors.GenarchError`; the endpoint keeps serving.
    """

    def invoke(self, request: Req_contra) -> Res_co: ...

    def invoke_batch(self, requests: Sequence[Req_contra]) -> Sequence[Res_co]: ...

    def health(self) -> HealthStatus: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class Deployer(Protocol):
    """Packages components into verifiable artefacts, and serves them: package →
    verify → load → serve, each step a method, ``deploy`` the last three in one.

    Implementations: :class:`genarch.deploy.LocalDeployer`.

    Contract:
        * ``package(component, d, name=, version=, registry=)`` saves a
          :class:`Persistable` component into ``d`` together with a manifest
          listing every file's size and SHA-256 and the component's name in
          ``registry``; the write is atomic (a crash leaves the previous
          artefact or the new one). Returns the manifest.
        * ``verify(d)`` checks every file against the manifest and returns it;
          a changed byte, a missing file or an extra file raises
          :class:`~genarch.errors.IntegrityError` naming the file. It reads
          nothing but the manifests and the bytes it hashes.
        * ``load(d, registry=)`` verifies first, then rebuilds the component
          through the class that ``registry`` (default: genarch's
          :func:`~genarch.registry.builtin_registry`) holds under the
          manifest's name — a path written in a file is never imported.
        * ``serve(component)`` wraps a loaded component in an :class:`Endpoint`.
        * ``deploy(d, registry=)`` is ``serve(load(d, registry))``; the
          endpoint gives the same results as the packaged component.
    """

    def package(
        self,
        component: Persistable,
        directory: PathLike,
        *,
        name: str,
        version: str,
        registry: Registry | None = None,
    ) -> ArtifactManifest: ...

    def verify(self, directory: PathLike) -> ArtifactManifest: ...

    def load(self, directory: PathLike, registry: Registry | None = None) -> Any: ...

    def serve(self, component: Any) -> Endpoint[Any, Any]: ...

    def deploy(
        self, directory: PathLike, registry: Registry | None = None
    ) -> Endpoint[Any, Any]: ...


# ------------------------------------------------------------------- orchestration


@runtime_checkable
class PromptTemplate(Protocol):
    """Renders a prompt from named variables.

    Values are inserted literally — a value such as ``"{secret}"`` is never
    interpreted as a placeholder. Missing or unexpected variables raise
    :class:`~genarch.errors.InvalidInputError` naming them.
    """

    @property
    def variables(self) -> frozenset[str]: ...

    def render(self, values: Mapping[str, object]) -> str: ...


@runtime_checkable
class VectorStore(Protocol):
    """Stores vectors by id with flat metadata and finds the nearest ones.

    Contract:
        * ``upsert`` adds or replaces; vectors have shape ``(N, dim)`` and must
          be finite; ``delete`` of unknown ids raises
          :class:`~genarch.errors.NotFoundError`.
        * ``search`` takes queries of shape ``(Q, dim)`` and returns, for each,
          at most ``k`` hits best first; ``where`` keeps only entries whose
          metadata equals every given value.
        * A query of the wrong dimension or with NaNs raises
          :class:`~genarch.errors.InvalidInputError`.
    """

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def upsert(
        self, ids: Sequence[str], vectors: torch.Tensor, metadata: Sequence[Metadata] | None = None
    ) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(
        self, queries: torch.Tensor, k: int, *, where: Mapping[str, MetadataValue] | None = None
    ) -> list[list[Hit]]: ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks most relevant to a query, best first (at most ``k``)."""

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]: ...
