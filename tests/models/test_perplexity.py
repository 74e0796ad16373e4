"""Loss and perplexity over token datasets."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from genarch.errors import InvalidInputError
from genarch.models import evaluate_loss
from models.gpt_testing import one_torch_thread, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


MODEL = tiny_model()  # context length 48
TOKENS = torch.randint(0, 256, (150,), generator=torch.Generator().manual_seed(0))


def test_loss_of_one_window_equals_the_models_loss() -> None:
    window = TOKENS[:40]
    report = evaluate_loss(MODEL, window)
    expected = MODEL.loss(window[None, :-1], window[None, 1:]).item()
    assert report.loss == pytest.approx(expected, rel=1e-5)
    assert report.num_tokens == 39
    assert report.perplexity == pytest.approx(math.exp(report.loss))
    assert report.bits_per_token == pytest.approx(report.loss / math.log(2))


def test_a_long_stream_predicts_every_token_but_the_first_once() -> None:
    report = evaluate_loss(MODEL, TOKENS, batch_size=2)
    assert report.num_tokens == len(TOKENS) - 1
    by_hand, count = 0.0, 0
    for start in range(0, len(TOKENS) - 1, 48):  # windows of 49 tokens overlapping by one
        window = TOKENS[start : start + 49]
        by_hand += MODEL.loss(window[None, :-1], window[None, 1:]).item() * (len(window) - 1)
        count += len(window) - 1
    assert report.loss == pytest.approx(by_hand / count, rel=1e-5)


def test_tensor_array_and_list_give_the_same_report() -> None:
    expected = evaluate_loss(MODEL, TOKENS)
    assert evaluate_loss(MODEL, TOKENS.numpy()) == expected
    assert evaluate_loss(MODEL, TOKENS.tolist()) == expected


def test_blocks_are_evaluated_separately() -> None:
    blocks = [TOKENS[:30], TOKENS[30:100].numpy(), TOKENS[100:].tolist()]
    report = evaluate_loss(MODEL, iter(blocks), batch_size=3)
    assert report.num_tokens == sum(len(b) - 1 for b in blocks)


def test_an_untrained_model_is_about_as_perplexed_as_the_vocabulary_is_large() -> None:
    assert 200 < evaluate_loss(MODEL, TOKENS).perplexity < 320


def test_max_batches_evaluates_a_prefix() -> None:
    assert evaluate_loss(MODEL, TOKENS, block_size=10, batch_size=2, max_batches=1).num_tokens == 20


def test_the_models_training_flag_is_restored() -> None:
    model = tiny_model(dropout=0.2).train()
    evaluate_loss(model, TOKENS)
    assert model.training


@pytest.mark.parametrize(
    "tokens",
    [TOKENS[:1], torch.zeros((2, 5), dtype=torch.long), torch.rand(10), "text", [[1.5, 2.5]], 7],
)
def test_unusable_token_data_is_refused(tokens: object) -> None:
    with pytest.raises(InvalidInputError):
        evaluate_loss(MODEL, tokens)  # type: ignore[arg-type]


def test_a_bad_block_size_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="block_size"):
        evaluate_loss(MODEL, TOKENS, block_size=0)
    with pytest.raises(InvalidInputError, match="block_size"):
        evaluate_loss(lambda idx: idx, np.arange(5))  # type: ignore[arg-type, return-value]
