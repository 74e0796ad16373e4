"""Checks for the feature layer: :class:`~genarch.protocols.FeatureExtractor`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from genarch.protocols import FeatureExtractor
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    assert_config_roundtrip,
    expect_genarch_error,
    label_of,
    require,
    run_checks,
    saved_and_loaded,
    scrambled_global_rngs,
    supports_config,
    supports_persistence,
)

__all__ = ["check_feature_extractor", "feature_extractor_checks"]


def feature_extractor_checks(
    extractor: FeatureExtractor[Any],
    examples: Sequence[Any],
    *,
    invalid_items: Sequence[Any] = (),
    atol: float = 1e-5,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.FeatureExtractor` (fit it first if it needs fitting)."""
    subject = label_of(extractor, label)
    items = list(examples)

    def shape_and_dtype() -> None:
        features = extractor.extract(items)
        require(
            isinstance(features, torch.Tensor),
            f"expected extract() to return a tensor, got {type(features).__name__}",
        )
        require(
            tuple(features.shape) == (len(items), extractor.dim),
            f"expected shape {(len(items), extractor.dim)}, got {tuple(features.shape)}",
        )
        require(features.dtype == torch.float32, f"expected float32, got {features.dtype}")
        require(
            bool(torch.isfinite(features).all()),
            "expected finite features, got NaN or infinity",
        )

    def deterministic() -> None:
        with scrambled_global_rngs():
            first = extractor.extract(items)
        with scrambled_global_rngs():
            second = extractor.extract(items)
        assert_same(second, first, path="second extraction")

    def batch_matches_single() -> None:
        single = torch.cat([extractor.extract([item]) for item in items])
        assert_same(extractor.extract(items), single, atol=atol, path="batch vs single")

    def empty_batch() -> None:
        features = extractor.extract([])
        require(
            tuple(features.shape) == (0, extractor.dim),
            f"expected extract([]) to have shape {(0, extractor.dim)}, got {tuple(features.shape)}",
        )

    def rejects_wrong_items() -> None:
        expect_genarch_error(lambda: extractor.extract([object()]), "extract([object()])")
        for index, bad in enumerate(invalid_items):
            expect_genarch_error(
                functools.partial(extractor.extract, [bad]), f"invalid item {index}"
            )

    def save_load_roundtrip() -> None:
        loaded = saved_and_loaded(extractor)
        assert_same(loaded.extract(items), extractor.extract(items), path="loaded")

    def config_roundtrip() -> None:
        assert_config_roundtrip(extractor)

    checks = [
        shape_and_dtype,
        deterministic,
        batch_matches_single,
        empty_batch,
        rejects_wrong_items,
    ]
    if supports_persistence(extractor):
        checks.append(save_load_roundtrip)
    if supports_config(extractor):
        checks.append(config_roundtrip)
    return [Check("FeatureExtractor", c.__name__, subject, c) for c in checks]


def check_feature_extractor(
    extractor: FeatureExtractor[Any], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`feature_extractor_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(feature_extractor_checks(extractor, examples, **options))
