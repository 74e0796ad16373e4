"""Close the feedback loop, measured: base model → simulated ratings → store → DPO → a better model.

Usage::

    python benchmarks/close_the_loop.py [--out runs/close-the-loop] [--threads 1] [--quick]

The steps (the tutorial ``docs/tutorials/close-the-loop.md`` walks through them):

1. **Base model.** A small GPT (with a byte-level BPE vocabulary trained
   on the corpus) is trained here on a synthetic
   help-desk corpus: short sentences about Python objects ("the parser reads
   the file."), a share of which open with the filler word "basically, ".
   Synthetic so that the preference below is frequent in the base model's
   answers, and so the whole loop runs on a laptop CPU in about a minute.
2. **Answers.** The base model answers training prompts ("the cache stores"),
   two sampled answers per prompt.
3. **Ratings.** A simulated user compares the two answers and prefers the
   one with *fewer* occurrences of the filler word "basically" (a checkable
   preference: :func:`filler_count`); equal counts state no preference.
   Each preference is recorded, with the model's name and version and a
   user id, in a :class:`~genarch.feedback.SQLiteFeedbackStore` (a real file).
4. **DPO.** The pairs read back from the store
   (:func:`~genarch.feedback.preference_pairs` over ``store.scan`` of this
   model version) train the policy with DPO against the frozen base.
5. **Measured** on held-out prompts (no training prompt among them): the win
   rate of the new model against the base under the same preference (and
   of the base against itself, the ≈ 50 % starting point), ``KL(new ‖ base)``
   from samples of the new model, and held-out perplexity on fresh corpus text.
6. **Registered**: the new version is packaged with these figures in its
   model card, registered in a :class:`~genarch.deploy.ModelRegistry` and
   promoted to ``production``.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genarch.data import BPETrainer, TiktokenTokenizer
from genarch.deploy import LocalDeployer, ModelRegistry
from genarch.feedback import (
    PreferenceOptimization,
    SQLiteFeedbackStore,
    freeze_reference,
    perplexity_change,
    preference_batch,
    preference_from_score,
    preference_pairs,
    sampled_kl,
    win_rate,
)
from genarch.models import GPT, GPTConfig, TextGenerator
from genarch.registry import builtin_registry
from genarch.schemas import FeedbackFilter, Preference, TextRequest
from genarch.training import LanguageModeling, Trainer, token_blocks

MODEL_NAME = "helpdesk-gpt"
FILLER = "basically"
SUBJECTS = (
    "the parser",
    "the list",
    "a dict",
    "the loop",
    "the module",
    "the function",
    "the class",
    "a tuple",
    "the cache",
    "the server",
    "the test",
    "the script",
)
VERBS = ("reads", "returns", "sorts", "copies", "checks", "updates", "stores", "prints")
OBJECTS = (
    "the file",
    "each key",
    "a string",
    "the value",
    "every item",
    "the result",
    "an error",
    "the path",
    "a number",
    "the index",
)


@dataclass(frozen=True)
class Settings:
    """Every size and rate of one run (the defaults are the full run)."""

    seed: int = 0
    filler_share: float = 0.3  # share of corpus sentences that open with "basically, "
    corpus_sentences: int = 20_000  # pre-training text (held-out text: a tenth as much, fresh)
    vocab_size: int = 400  # byte-level BPE; enough merges for every word to be one token
    n_layer: int = 2
    n_embd: int = 64
    context_length: int = 64
    pretrain_steps: int = 600
    pretrain_batch: int = 32
    pretrain_learning_rate: float = 1e-2
    answer_tokens: int = 48  # tokens per answer: about seven sentences
    rating_samples: int = 8  # answer pairs rated per training prompt
    dpo_loss: str = "dpo"  # "dpo", "cdpo" (with dpo_label_smoothing) or "ipo"
    dpo_beta: float = 0.5
    dpo_label_smoothing: float = 0.0
    dpo_steps: int = 40
    dpo_batch: int = 32
    dpo_learning_rate: float = 1e-4
    eval_samples: int = 8  # answer pairs per held-out prompt


QUICK = Settings(
    corpus_sentences=4_000,
    n_layer=1,
    n_embd=48,
    pretrain_steps=300,
    pretrain_batch=16,
    rating_samples=4,
    dpo_batch=16,
    eval_samples=2,
)
"""A reduced run that still shows the improvement clearly (the test's and the tutorial's size)."""


def filler_count(text: str) -> int:
    """How often the filler word occurs in ``text`` (whole words, any case): the user's dislike."""
    return len(re.findall(rf"\b{FILLER}\b", text, flags=re.IGNORECASE))


def help_desk_corpus(sentences: int, seed: int, filler_share: float) -> str:
    """Synthetic help-desk prose, one paragraph of 3 to 6 sentences a line."""
    rng = random.Random(seed)
    lines, line = [], []
    for _ in range(sentences):
        opener = f"{FILLER}, " if rng.random() < filler_share else ""
        line.append(f"{opener}{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}.")
        if len(line) >= rng.randint(3, 6):
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)]) + "\n"


def prompt_split(seed: int) -> tuple[list[str], list[str]]:
    """Every "<subject> <verb>" prompt, two thirds for feedback, one third held out."""
    prompts = [f"{s} {v}" for s in SUBJECTS for v in VERBS]
    random.Random(seed).shuffle(prompts)
    cut = 2 * len(prompts) // 3
    return prompts[:cut], prompts[cut:]


def train_base(settings: Settings, text: str, tokenizer: TiktokenTokenizer) -> GPT:
    """Pre-train the base GPT on the corpus through the ordinary Trainer."""
    torch.manual_seed(settings.seed)
    model = GPT(
        GPTConfig(
            vocab_size=tokenizer.vocab_size,
            context_length=settings.context_length,
            n_layer=settings.n_layer,
            n_head=2,
            n_embd=settings.n_embd,
        )
    )
    rows = token_blocks(tokenizer.encode(text), settings.context_length)
    Trainer(
        LanguageModeling(model),
        max_steps=settings.pretrain_steps,
        batch_size=settings.pretrain_batch,
        optimizer={"learning_rate": settings.pretrain_learning_rate},
        schedule={"warmup_steps": settings.pretrain_steps // 10, "decay": "cosine"},
        seed=settings.seed,
        progress=False,
    ).fit(rows)
    return model.eval()


def collect_feedback(
    store: SQLiteFeedbackStore,
    generator: TextGenerator,
    prompts: list[str],
    settings: Settings,
    version: str,
) -> int:
    """The model answers each prompt twice, ``rating_samples`` times; the simulated user
    records which answer has fewer fillers. Returns the preferences recorded."""
    asked = [p for p in prompts for _ in range(settings.rating_samples)]
    requests = [
        TextRequest(prompt=p, max_new_tokens=settings.answer_tokens, seed=10_000 + i)
        for i, p in enumerate(asked + asked)
    ]
    answers = [result.text for result in generator.generate_batch(requests)]
    recorded = 0
    for index, (prompt, a, b) in enumerate(
        zip(asked, answers[: len(asked)], answers[len(asked) :], strict=True)
    ):
        if filler_count(a) == filler_count(b):
            continue  # no preference stated
        chosen, rejected = (a, b) if filler_count(a) < filler_count(b) else (b, a)
        store.record(
            Preference(
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                model_name=MODEL_NAME,
                model_version=version,
                user=f"simulated-user-{index % 7}",
            )
        )
        recorded += 1
    return recorded


def optimise(
    base: GPT, pairs: list[Preference], settings: Settings, tokenizer: TiktokenTokenizer
) -> GPT:
    """One DPO round: a copy of the base as the policy, the frozen base as the reference."""
    policy = GPT(base.config)
    policy.load_state_dict(base.state_dict())
    objective = PreferenceOptimization(
        policy,
        freeze_reference(base),
        loss=settings.dpo_loss,
        beta=settings.dpo_beta,
        label_smoothing=settings.dpo_label_smoothing,
    )
    batch = preference_batch(pairs, tokenizer, max_len=settings.context_length)
    Trainer(
        objective,
        max_steps=settings.dpo_steps,
        batch_size=settings.dpo_batch,
        optimizer={"learning_rate": settings.dpo_learning_rate},
        seed=settings.seed,
        progress=False,
    ).fit(batch)
    return policy.eval()


@dataclass(frozen=True)
class LoopRun:
    """What one run produced: its figures, and the base and new model to register."""

    figures: dict[str, Any]
    base: TextGenerator
    new: TextGenerator


def run(settings: Settings, workdir: Path) -> LoopRun:
    """The whole loop; the feedback store stays in ``workdir/feedback.db``."""
    started = time.perf_counter()
    text = help_desk_corpus(settings.corpus_sentences, settings.seed, settings.filler_share)
    tokenizer = BPETrainer(vocab_size=settings.vocab_size).train([text])
    held_out_text = help_desk_corpus(
        settings.corpus_sentences // 10, settings.seed + 1, settings.filler_share
    )
    train_prompts, held_out_prompts = prompt_split(settings.seed)

    base = train_base(settings, text, tokenizer)
    base_generator = TextGenerator(base, tokenizer)

    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "feedback.db").exists():
        raise FileExistsError(f"{workdir} holds an earlier run's feedback; choose another --out")
    with SQLiteFeedbackStore(workdir / "feedback.db") as store:
        recorded = collect_feedback(store, base_generator, train_prompts, settings, version="1")
        pairs = list(
            preference_pairs(store.scan(FeedbackFilter(model_name=MODEL_NAME, model_version="1")))
        )
    new = optimise(base, pairs, settings, tokenizer)
    new_generator = TextGenerator(new, tokenizer)

    prefer = preference_from_score(lambda answer: -filler_count(answer))
    measure = {
        "samples_per_prompt": settings.eval_samples,
        "max_new_tokens": settings.answer_tokens,
        "seed": settings.seed + 1,
    }
    before = win_rate(base_generator, base_generator, held_out_prompts, prefer, **measure)
    after = win_rate(new_generator, base_generator, held_out_prompts, prefer, **measure)
    kl = sampled_kl(new_generator, base, held_out_prompts, **measure)
    perplexity = perplexity_change(base, new, tokenizer.encode(held_out_text))
    figures = {
        "recorded_preferences": recorded,
        "training_pairs": len(pairs),
        "held_out_prompts": len(held_out_prompts),
        "win_rate_before": before.rate,
        "win_rate_after": after.rate,
        "win_rate_after_stderr": after.stderr,
        "wins_ties_losses_after": [after.wins, after.ties, after.losses],
        "kl_per_answer": kl.per_answer,
        "kl_per_token": kl.per_token,
        "perplexity_base": perplexity.base,
        "perplexity_new": perplexity.new,
        "perplexity_change": perplexity.relative,
        "fillers_per_answer": {
            "base": _mean_fillers(base_generator, held_out_prompts, settings),
            "new": _mean_fillers(new_generator, held_out_prompts, settings),
        },
        "seconds": time.perf_counter() - started,
    }
    return LoopRun(figures=figures, base=base_generator, new=new_generator)


def _mean_fillers(generator: TextGenerator, prompts: list[str], settings: Settings) -> float:
    requests = [
        TextRequest(prompt=p, max_new_tokens=settings.answer_tokens, seed=20_000 + i)
        for i, p in enumerate(prompts)
    ]
    answers = generator.generate_batch(requests)
    return sum(filler_count(a.text) for a in answers) / len(answers)


EVALUATION_KEYS = (
    "win_rate_before",
    "win_rate_after",
    "win_rate_after_stderr",
    "kl_per_answer",
    "kl_per_token",
    "perplexity_base",
    "perplexity_new",
    "perplexity_change",
)


def register_and_promote(result: LoopRun, workdir: Path) -> dict[str, Any]:
    """Package the base (version 1) and the new model (version 2, with its evaluation in
    the model card), register both in a ModelRegistry and promote each in turn to
    ``production``."""
    names = builtin_registry().register("genarch.TextGenerator", TextGenerator)
    registry, deployer = ModelRegistry(workdir / "registry", user="close-the-loop"), LocalDeployer()
    for version, generator, evaluation in (
        ("1", result.base, None),
        ("2", result.new, {key: float(result.figures[key]) for key in EVALUATION_KEYS}),
    ):
        deployer.package(
            generator,
            workdir / "artifacts" / version,
            name=MODEL_NAME,
            version=version,
            registry=names,
            evaluation=evaluation,
            intended_use="A demonstration of the feedback loop on a synthetic help-desk corpus.",
            limitations="Trained on template sentences; not a general-purpose model.",
        )
        registry.register(workdir / "artifacts" / version)
        registry.promote(MODEL_NAME, version, "production")
    production = registry.resolve(f"{MODEL_NAME}@production")
    card_text = (registry.path(f"{MODEL_NAME}@production") / "README.md").read_text("utf-8")
    return {
        "production": f"{production.name}@{production.version}",
        "card_reports_win_rate": "win_rate_after" in card_text,
        "registry": str(registry.root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/close-the-loop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="the reduced (test) setting")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else Settings()
    result = run(settings, Path(args.out))
    figures = {**result.figures, "registered": register_and_promote(result, Path(args.out))}
    figures.update(
        settings=asdict(settings),
        torch_threads=args.threads,
        machine=platform.processor() or platform.machine(),
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
