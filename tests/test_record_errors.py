"""Validation errors of records and configs read as one sentence per problem."""

from __future__ import annotations

from typing import Self

import pytest
from pydantic import model_validator

from genarch.errors import ConfigError
from genarch.schemas import Config


class PositiveConfig(Config):
    n: int = 1

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.n < 1:
            raise ValueError("n must be positive")
        return self


@pytest.mark.parametrize(
    "build",
    [
        lambda: PositiveConfig(n=0),
        lambda: PositiveConfig.parse({"n": 0}),
        lambda: PositiveConfig.parse('{"n": 0}'),
        lambda: PositiveConfig.resolve(None, {"n": 0}),
        lambda: PositiveConfig.coerce({"n": 0}),
    ],
)
def test_a_validator_message_is_reported_once_whatever_the_path(build) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    message = str(caught.value)
    assert message.count("n must be positive") == 1, message
    assert message.count("PositiveConfig") == 1, message
