"""The GPT model: shapes, causality, the KV cache, padding, init, persistence."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given
from hypothesis import strategies as st

from genarch._io import write_manifest
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models import GPT, GPTConfig
from models.gpt_testing import VARIANTS, one_torch_thread, tiny_config, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


MODELS = {name: tiny_model(**fields) for name, fields in VARIANTS.items()}
variants = pytest.mark.parametrize("name", list(VARIANTS))


def random_ids(batch: int, steps: int, seed: int = 0, vocab: int = 256) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, steps), generator=torch.Generator().manual_seed(seed))


@variants
def test_logits_have_shape_batch_time_vocab(name: str) -> None:
    assert MODELS[name](random_ids(3, 7)).shape == (3, 7, 256)


@variants
@given(prefix=st.integers(1, 20), change=st.integers(0, 255), seed=st.integers(0, 2**16))
def test_a_future_token_never_changes_an_earlier_logit(
    name: str, prefix: int, change: int, seed: int
) -> None:
    model = MODELS[name]
    idx = random_ids(1, 24, seed)
    altered = idx.clone()
    altered[0, prefix:] = (altered[0, prefix:] + change) % 256
    with torch.no_grad():
        before, after = model(idx), model(altered)
    torch.testing.assert_close(after[:, :prefix], before[:, :prefix], rtol=0, atol=1e-6)


@variants
def test_decoding_with_the_cache_equals_recomputing_the_whole_context(name: str) -> None:
    model = MODELS[name]
    idx = random_ids(2, 20, seed=1)
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(2, 20)
        pieces = [model.lm_head(model.hidden_states(idx[:, :8], cache=cache))]
        for t in range(8, 20):  # one token at a time
            pieces.append(model.lm_head(model.hidden_states(idx[:, t : t + 1], cache=cache)))
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-5)


@variants
def test_a_left_padded_row_gives_the_logits_it_gives_alone(name: str) -> None:
    model = MODELS[name]
    short, long = random_ids(1, 5, seed=2), random_ids(1, 9, seed=3)
    idx = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    key_mask = torch.ones(2, 9, dtype=torch.bool)
    key_mask[0, :4] = False
    positions = (torch.arange(9) - torch.tensor([[4], [0]])).clamp(min=0)
    with torch.no_grad():
        batched = model.lm_head(model.hidden_states(idx, positions=positions, key_mask=key_mask))
        alone = model(short)
    torch.testing.assert_close(batched[0, 4:], alone[0], rtol=0, atol=1e-5)


def test_loss_is_mean_cross_entropy_of_the_logits() -> None:
    model = MODELS["gpt2"]
    idx, targets = random_ids(2, 10, 4), random_ids(2, 10, 5)
    logits = model(idx)
    expected = F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))
    torch.testing.assert_close(model.loss(idx, targets), expected)
    assert model.loss(idx, targets, label_smoothing=0.1).item() != pytest.approx(expected.item())


def test_loss_ignores_targets_of_minus_100() -> None:
    model = MODELS["gpt2"]
    idx, targets = random_ids(1, 10, 4), random_ids(1, 10, 5)
    masked = targets.clone()
    masked[0, 5:] = -100
    expected = F.cross_entropy(model(idx)[0, :5], targets[0, :5])
    torch.testing.assert_close(model.loss(idx, masked), expected)


def test_untrained_loss_is_about_log_vocab() -> None:
    loss = MODELS["gpt2"].loss(random_ids(4, 32, 6), random_ids(4, 32, 7)).item()
    assert abs(loss - math.log(256)) < 0.1


@pytest.mark.parametrize(
    ("idx", "message"),
    [
        (torch.zeros(5, dtype=torch.long), "2-D integer tensor"),
        (torch.zeros(1, 5), "2-D integer tensor"),
        (torch.full((1, 5), 256), "outside range"),
        (torch.zeros(1, 49, dtype=torch.long), "context length is 48"),
    ],
)
def test_forward_rejects_bad_token_ids(idx: torch.Tensor, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MODELS["gpt2"](idx)


def test_loss_rejects_targets_of_another_shape() -> None:
    with pytest.raises(InvalidInputError, match="targets"):
        MODELS["gpt2"].loss(random_ids(1, 5), random_ids(1, 4))


@pytest.mark.parametrize(
    "fields",
    [
        {"n_embd": 30, "n_head": 4},
        {"n_head": 4, "n_kv_head": 3},
        {"n_embd": 30, "n_head": 10, "positions": "rotary"},
        {"dropout": 1.0},
        {"vocab_size": 0},
        {"positions": "alibi"},
        {"n_layers": 2},
    ],
)
def test_inconsistent_configs_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        tiny_config(**fields)
    with pytest.raises(ConfigError):
        GPT.from_config({**tiny_config().model_dump(), **fields})


def test_from_config_accepts_the_config_or_its_json() -> None:
    config = tiny_config(positions="rotary")
    assert GPT.from_config(config).config == config
    assert GPT.from_config(json.loads(config.model_dump_json())).config == config


def test_a_config_and_keyword_fields_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        GPT(tiny_config(), n_layer=3)


def test_tied_embeddings_share_one_tensor_and_untied_do_not() -> None:
    tied, untied = MODELS["gpt2"], MODELS["gqa-untied"]
    assert tied.lm_head.weight is tied.wte.weight
    assert untied.lm_head.weight is not untied.wte.weight


def test_initialisation_is_gpt2s() -> None:
    model = tiny_model(n_embd=128, n_layer=4, context_length=64)
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    scaled = 0.02 / math.sqrt(2 * 4)
    assert model.blocks[0].mlp.down.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert torch.count_nonzero(model.blocks[0].attn.qkv.bias) == 0


def test_same_seed_builds_the_same_weights() -> None:
    first, second = tiny_model(seed=3), tiny_model(seed=3)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_num_parameters_counts_shared_tensors_once() -> None:
    tied, untied = tiny_model(), tiny_model(tie_embeddings=False)
    assert untied.num_parameters() - tied.num_parameters() == 256 * 32
    assert (
        tied.num_parameters(exclude_embeddings=True) == tied.num_parameters() - 256 * 32 - 48 * 32
    )


def test_flops_per_token_is_6n_plus_attention() -> None:
    model = tiny_model()
    config = model.config
    # Matmul weights: all 2-D parameters except the position table (tied output layer included).
    n = model.num_parameters() - config.context_length * config.n_embd
    n -= sum(p.numel() for p in model.parameters() if p.ndim == 1)
    attention = 12 * config.n_layer * config.context_length * config.n_embd
    assert model.flops_per_token() == 6 * n + attention
    assert (
        model.flops_per_token(16, training=False) == 2 * n + 4 * config.n_layer * 16 * config.n_embd
    )


@variants
def test_save_then_load_gives_the_same_logits(name: str, tmp_path: Path) -> None:
    model = MODELS[name]
    model.save(tmp_path / "m")
    loaded = GPT.load(tmp_path / "m").eval()
    assert loaded.config == model.config
    idx = random_ids(2, 12, 8)
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_a_save_interrupted_between_its_two_renames_still_loads(tmp_path: Path) -> None:
    model = MODELS["gpt2"]
    model.save(tmp_path / "m")
    # the old copy moved aside, the new one not yet in place:
    (tmp_path / "m").rename(tmp_path / ".m.old-1-2")
    idx = random_ids(2, 12, 8)
    with torch.no_grad():
        assert torch.equal(GPT.load(tmp_path / "m").eval()(idx), model(idx))


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_a_save_of_the_first_release_loads(tied: bool, tmp_path: Path) -> None:
    """config.json ({"format": "genarch.GPT", "config": ...}) and model.safetensors
    without the tied output layer: the layout every release writes."""
    from safetensors.torch import save_file

    model = tiny_model(tie_embeddings=tied)
    state = {name: t.contiguous() for name, t in model.state_dict().items()}
    if tied:
        del state["lm_head.weight"]
    (tmp_path / "m").mkdir()
    save_file(state, str(tmp_path / "m" / "model.safetensors"))
    document = {"format": "genarch.GPT", "config": model.config.model_dump(mode="json")}
    (tmp_path / "m" / "config.json").write_text(json.dumps(document))
    idx = random_ids(2, 12, 8)
    with torch.no_grad():
        assert torch.equal(GPT.load(tmp_path / "m").eval()(idx), model.eval()(idx))


def test_load_of_another_kind_is_an_integrity_error_naming_the_path(tmp_path: Path) -> None:
    MODELS["gpt2"].save(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**document, "format": "genarch.vae/1"}))
    write_manifest(tmp_path / "m")  # consistent, so the kind check is what refuses it
    with pytest.raises(IntegrityError, match=r"genarch\.vae/1.*not a 'genarch\.GPT'"):
        GPT.load(tmp_path / "m")


def test_load_of_an_empty_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        GPT.load(tmp_path)


def test_load_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    MODELS["gpt2"].save(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "config.json").read_text())
    document["config"]["n_embd"] = 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(document))
    write_manifest(tmp_path / "m")  # consistent, so the shape check is what refuses it
    with pytest.raises(IntegrityError, match="shape"):
        GPT.load(tmp_path / "m")


def test_load_refuses_a_truncated_weights_file(tmp_path: Path) -> None:
    MODELS["gpt2"].save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(IntegrityError):
        GPT.load(tmp_path / "m")


def test_a_few_adamw_steps_lower_the_loss() -> None:
    model = tiny_model(seed=1).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.tensor([list(b"abcabcabcabcabcabc" * 2)])
    losses = []
    for _ in range(30):
        loss = model.loss(data[:, :-1], data[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2


def test_dropout_is_active_in_training_only() -> None:
    model = tiny_model(dropout=0.5)
    idx = random_ids(1, 16)
    assert torch.equal(model(idx), model(idx))  # eval mode
    model.train()
    assert not torch.equal(model(idx), model(idx))
    model.eval()


def test_gpt_config_is_frozen() -> None:
    config = GPTConfig(vocab_size=10)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.n_layer = 3  # type: ignore[misc]
