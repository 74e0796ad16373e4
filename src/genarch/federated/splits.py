"""Seeded partitions of a data set across simulated clients.

Real federations are not IID: one hospital sees mostly one disease, one phone
mostly one user's words. :func:`dirichlet_label_split` simulates that *label
skew* the usual way (Hsu et al., 2019, "Measuring the Effects of Non-Identical
Data Distribution for Federated Visual Classification"): for every class, draw
client shares from a symmetric Dirichlet(``alpha``) and deal the class's
samples out in those shares. Small ``alpha`` (0.1) gives clients that hold one
or two classes each; large ``alpha`` (100) is close to an IID split, which
:func:`iid_split` gives exactly.

Both return one index tensor per client: every sample is in exactly one
client's indices, and the same arguments give the same partition.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genarch.errors import InvalidInputError
from genarch.validation import describe, require_count

__all__ = ["dirichlet_label_split", "iid_split"]

_MAX_DRAWS = 1000


def dirichlet_label_split(
    labels: torch.Tensor,
    num_clients: int,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    min_size: int = 1,
) -> list[torch.Tensor]:
    """Deal samples to clients with Dirichlet label skew.

    Args:
        labels: ``(N,)`` integer class labels.
        num_clients: how many clients to split across (>= 1).
        alpha: concentration of the Dirichlet prior (> 0): smaller is more skewed.
        seed: the draws and shuffles (same seed, same split).
        min_size: every client gets at least this many samples; the draw is
            repeated (seeded) until it holds, at most 1,000 times.

    Returns:
        ``num_clients`` sorted int64 index tensors into ``labels``, disjoint,
        covering every index once.

    Raises:
        InvalidInputError: ``labels`` is not a 1-D integer tensor, a count or
            ``alpha`` is out of range, or ``min_size`` cannot be met.

    Examples:
        >>> labels = torch.arange(100) % 10
        >>> parts = dirichlet_label_split(labels, 4, alpha=0.3, seed=0)
        >>> sum(len(p) for p in parts), torch.cat(parts).unique().numel()
        (100, 100)
        >>> all(torch.equal(a, b) for a, b in zip(parts, dirichlet_label_split(labels, 4, alpha=0.3)))
        True
    """
    where = "dirichlet_label_split"
    if not (
        isinstance(labels, torch.Tensor)
        and labels.ndim == 1
        and not labels.dtype.is_floating_point
        and not labels.dtype.is_complex
        and labels.dtype != torch.bool
    ):
        raise InvalidInputError(
            f"{where} expected labels as a 1-D integer tensor, got {describe(labels)}"
        )
    clients = require_count(num_clients, where, "num_clients")
    at_least = require_count(min_size, where, "min_size", minimum=0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < math.inf:
        raise InvalidInputError(f"{where} expected alpha as a finite number > 0, got {alpha!r}")
    if clients * at_least > labels.numel():
        raise InvalidInputError(
            f"{where} cannot give {clients} clients at least {at_least} samples each "
            f"from {labels.numel()} samples"
        )
    rng = np.random.default_rng(seed)
    values = labels.numpy()
    classes = np.unique(values)
    for _ in range(_MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(values == label))
            shares = rng.dirichlet(np.full(clients, float(alpha)))
            cuts = (np.cumsum(shares)[:-1] * members.size).astype(np.int64)
            for client, piece in enumerate(np.split(members, cuts)):
                parts[client].append(piece)
        sizes = [sum(piece.size for piece in pieces) for pieces in parts]
        if min(sizes) >= at_least:
            return [torch.from_numpy(np.sort(np.concatenate(pieces))).long() for pieces in parts]
    raise InvalidInputError(
        f"{where} found no split giving every one of {clients} clients at least {at_least} "
        f"samples in {_MAX_DRAWS} draws with alpha={alpha}; raise alpha or lower min_size"
    )


def iid_split(num_samples: int, num_clients: int, *, seed: int = 0) -> list[torch.Tensor]:
    """Shuffle ``range(num_samples)`` and cut it into ``num_clients`` near-equal parts.

    Returns:
        ``num_clients`` sorted int64 index tensors, disjoint, covering every
        index once; sizes differ by at most one.

    Raises:
        InvalidInputError: a count out of range (fewer samples than clients).

    Examples:
        >>> [p.tolist() for p in iid_split(5, 2, seed=0)]
        [[0, 1, 4], [2, 3]]
    """
    samples = require_count(num_samples, "iid_split", "num_samples")
    clients = require_count(num_clients, "iid_split", "num_clients", maximum=samples)
    order = torch.randperm(samples, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in torch.tensor_split(order, clients)]
