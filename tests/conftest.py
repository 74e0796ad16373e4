"""Shared test settings: small, deterministic, quiet."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

# Two cores on CI: keep torch from oversubscribing when pytest runs alone.
torch.set_num_threads(min(2, os.cpu_count() or 1))

settings.register_profile(
    "genarch", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("genarch")
