"""linear_cross_entropy: the chunked output layer + loss equals the plain computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.models import GPT, output_loss
from genarch.models.output_loss import linear_cross_entropy
from genarch.training import LanguageModeling


def tensors(rows: int, width: int, vocab: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, width, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, width, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,), generator=gen)
    return hidden, weight, targets


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    vocab=st.integers(2, 30),
    chunk=st.integers(1, 50),
    smoothing=st.sampled_from([0.0, 0.1, 0.5]),
    ignored=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_value_and_gradients_equal_plain_cross_entropy(
    rows: int, vocab: int, chunk: int, smoothing: float, ignored: int, seed: int
) -> None:
    hidden, weight, targets = tensors(rows, 6, vocab, seed)
    targets[:ignored] = -100
    if ignored >= rows:
        targets[0] = 0  # at least one counted row (all-ignored is tested below)
    fused = linear_cross_entropy(
        hidden, weight, targets, label_smoothing=smoothing, chunk_rows=chunk
    )
    (fused * 3.0).backward()  # type: ignore[no-untyped-call]  # the incoming gradient scales both
    got = hidden.grad, weight.grad
    hidden.grad = weight.grad = None
    plain = F.cross_entropy(hidden @ weight.T, targets, label_smoothing=smoothing)
    (plain * 3.0).backward()  # type: ignore[no-untyped-call]
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], weight.grad, rtol=1e-10, atol=1e-12)


def test_float32_chunks_in_the_reused_buffer_match_float64_cross_entropy() -> None:
    # float32 as in training: the vectorised log_softmax runs in place in the buffer that every
    # chunk reuses, the last chunk is shorter, every seventh row is ignored, and the row scale
    # of the mean is applied to the narrow side of the products.
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(300, 32, generator=gen, requires_grad=True)
    weight = (torch.randn(1000, 32, generator=gen) * 0.5).requires_grad_()
    targets = torch.randint(0, 1000, (300,), generator=gen)
    targets[::7] = -100
    for smoothing in (0.0, 0.1):
        fused = linear_cross_entropy(
            hidden, weight, targets, label_smoothing=smoothing, chunk_rows=128
        )
        got = torch.autograd.grad(fused, (hidden, weight))
        wide = [t.detach().double().requires_grad_() for t in (hidden, weight)]
        plain = F.cross_entropy(wide[0] @ wide[1].T, targets, label_smoothing=smoothing)
        expected = torch.autograd.grad(plain, wide)
        torch.testing.assert_close(fused.double(), plain.detach(), rtol=1e-6, atol=0)
        for mine, reference in zip(got, expected, strict=True):
            torch.testing.assert_close(mine.double(), reference, rtol=1e-4, atol=1e-7)


def test_default_chunks_split_the_rows_evenly_and_match_plain_cross_entropy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At most 7 rows of 10 logits per chunk: 15 rows go in 3 chunks of 5 (not 7 + 7 + 1).
    monkeypatch.setattr(output_loss, "CHUNK_ELEMENTS", 70)
    shapes: list[tuple[int, ...]] = []
    mm = torch.mm

    def spy(a: torch.Tensor, b: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(a.shape))
        return mm(a, b, **kwargs)

    monkeypatch.setattr(torch, "mm", spy)
    hidden, weight, targets = tensors(15, 4, 10, seed=3)
    fused = linear_cross_entropy(hidden, weight, targets)
    monkeypatch.undo()
    assert shapes[::2] == [(5, 4)] * 3  # each chunk's logits, then its hidden-state gradient
    got = torch.autograd.grad(fused, (hidden, weight))
    plain = F.cross_entropy(hidden @ weight.T, targets)
    torch.testing.assert_close(fused, plain)
    for mine, reference in zip(got, torch.autograd.grad(plain, (hidden, weight)), strict=True):
        torch.testing.assert_close(mine, reference)


def test_only_the_weight_or_only_the_hidden_states_may_need_gradients() -> None:
    hidden, weight, targets = tensors(9, 4, 7, seed=1)
    frozen = weight.detach()
    linear_cross_entropy(hidden, frozen, targets, chunk_rows=4).backward()  # type: ignore[no-untyped-call]
    expected = torch.autograd.grad(F.cross_entropy(hidden @ frozen.T, targets), hidden)[0]
    torch.testing.assert_close(hidden.grad, expected)
    with torch.no_grad():  # evaluation: the loss alone
        value = linear_cross_entropy(hidden, weight, targets)
    assert not value.requires_grad
    torch.testing.assert_close(value, F.cross_entropy(hidden @ weight.T, targets))


def test_all_targets_ignored_gives_nan_like_cross_entropy() -> None:
    hidden, weight, targets = tensors(3, 4, 5, seed=2)
    targets[:] = -100
    assert math.isnan(float(linear_cross_entropy(hidden, weight, targets).detach()))
    assert math.isnan(float(F.cross_entropy(hidden @ weight.T, targets).detach()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden": torch.zeros(3, 5)}, "share C"),
        ({"weight": torch.zeros(7, 4, dtype=torch.float32)}, "share dtype"),
        ({"targets": torch.tensor([0, 1])}, "one per row"),
        ({"targets": torch.tensor([0, 7, 1])}, "range"),
        ({"targets": torch.tensor([0.0, 1.0, 2.0])}, "integer ids"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"chunk_rows": 0}, "chunk_rows"),
    ],
)
def test_bad_inputs_are_refused(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "hidden": torch.zeros(3, 4, dtype=torch.float64),
        "weight": torch.zeros(7, 4, dtype=torch.float64),
        "targets": torch.tensor([0, 1, 2]),
    }
    arguments |= change
    with pytest.raises(InvalidInputError, match=message):
        linear_cross_entropy(**arguments)  # type: ignore[arg-type]


def test_gpt_loss_and_the_language_modeling_objective_match_the_logits_path() -> None:
    torch.manual_seed(0)
    model = GPT(vocab_size=50, context_length=16, n_layer=1, n_head=2, n_embd=16)
    batch = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(3))
    idx, targets = batch[:, :-1], batch[:, 1:]
    for loss in (
        model.loss(idx, targets, label_smoothing=0.1),
        LanguageModeling(model, label_smoothing=0.1).loss("model", batch),
    ):
        fused = torch.autograd.grad(loss, list(model.parameters()))
        plain_loss = F.cross_entropy(
            model(idx).flatten(0, 1), targets.flatten(), label_smoothing=0.1
        )
        plain = torch.autograd.grad(plain_loss, list(model.parameters()))
        torch.testing.assert_close(loss, plain_loss)
        for a, b in zip(fused, plain, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
