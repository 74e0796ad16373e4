"""Train a VAE, a GAN and a diffusion model on the 8x8 digits and measure them honestly.

Usage::

    python benchmarks/train_digits.py [--out runs/digits] [--minutes-per-model 3] [--quick]

Trains (class-conditional, through the genarch Trainer) for a wall-time budget
each, then scores 50 samples per digit with :class:`genarch.models.image_eval.DigitsEvaluator`
next to two baselines (Gaussian noise, real training digits). Saves the models
and ``figures.json`` under ``--out`` (used by ``make_digit_pictures.py``).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from genarch.data.digits import load_digits
from genarch.models.diffusion import DDIMSampler, Diffusion, DiffusionConfig, DiffusionRequest
from genarch.models.gan import GAN, GANConfig
from genarch.models.image_eval import DigitsEvaluator, classifier_accuracy, train_digit_classifier
from genarch.models.image_training import train_objective
from genarch.models.vae import VAE, VAEConfig
from genarch.schemas import ImageRequest

logger = logging.getLogger("train_digits")

PER_DIGIT = 50


def conditional_samples(
    model: object, request_type: type[ImageRequest] = ImageRequest, **extra: object
) -> torch.Tensor:
    images = [
        model.generate(request_type(num_samples=PER_DIGIT, label=d, seed=1000 + d, **extra)).images  # type: ignore[attr-defined]
        for d in range(10)
    ]
    return torch.cat(images)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/digits")
    parser.add_argument("--minutes-per-model", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes: a smoke test")
    parser.add_argument(
        "--models",
        default="vae,gan,diffusion",
        help="comma-separated: which models to train "
        "(the others' figures are kept from an earlier run's figures.json)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    seconds = 10.0 if args.quick else args.minutes_per_model * 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, threads {args.threads}, "
        f"budget {seconds:.0f} s per model"
    )

    digits = load_digits(seed=0)
    wanted = torch.arange(10).repeat_interleave(PER_DIGIT)
    started = time.perf_counter()
    classifier = train_digit_classifier(digits.train, steps=60 if args.quick else 800)
    accuracy = classifier_accuracy(classifier, digits.test)
    print(
        f"classifier: held-out accuracy {accuracy:.4f} on {len(digits.test)} test digits "
        f"({time.perf_counter() - started:.0f} s)"
    )
    evaluator = DigitsEvaluator(classifier, digits.test.inputs)
    figures: dict[str, object] = {
        "classifier_test_accuracy": accuracy,
        "test_digits": len(digits.test),
        "samples_per_model": 10 * PER_DIGIT,
        "seconds_per_model": seconds,
        "threads": args.threads,
        "baselines": {
            k: v.model_dump()
            for k, v in evaluator.baselines(digits.train.inputs, 10 * PER_DIGIT).items()
        },
    }

    models = {
        "vae": (
            VAE(VAEConfig(num_classes=10, latent_dim=8, width=32, beta=2.0)),
            {"learning_rate": 2e-3, "batch_size": 128},
        ),
        "gan": (
            GAN(
                GANConfig(
                    num_classes=10,
                    latent_dim=32,
                    width=32,
                    loss="hinge",
                    spectral_norm=True,
                    ema_decay=0.99,
                )
            ),
            {"learning_rate": 8e-4, "betas": (0.5, 0.999), "batch_size": 64, "max_grad_norm": None},
        ),
        "diffusion": (
            Diffusion(
                DiffusionConfig(
                    num_classes=10, width=24, sampler=DDIMSampler(steps=50), guidance_scale=2.0
                )
            ),
            {"learning_rate": 2e-3, "batch_size": 96},
        ),
    }
    chosen = args.models.split(",")
    previous = out / "figures.json"
    if previous.is_file():  # keep the figures of models not retrained now
        kept = json.loads(previous.read_text())
        figures.update(
            {k: v for k, v in kept.items() if k not in figures and k.split("_")[0] not in chosen}
        )
    for name, (model, options) in models.items():
        if name not in chosen:
            continue
        torch.manual_seed(0)
        objective = model.objective()  # type: ignore[attr-defined]
        report = train_objective(
            objective,
            digits.train.as_batch(),
            steps=100_000,
            seconds=seconds,
            seed=0,
            log_every=200,
            **options,
        )  # type: ignore[arg-type]
        if hasattr(objective, "finish"):
            objective.finish()
        model.save(out / name)
        tick = time.perf_counter()
        scores = evaluator.score(conditional_samples(model), wanted)
        entry = {
            "steps": report.steps,
            "train_seconds": round(report.wall_seconds, 1),
            "final_loss": report.train_loss[-1],
            "sample_seconds": round(time.perf_counter() - tick, 1),
            **scores.model_dump(),
        }
        print(f"{name}: {entry}")
        figures[name] = entry
    diffusion = models["diffusion"][0]
    extra = (
        {}
        if "diffusion" not in chosen
        else {
            "diffusion_no_guidance": conditional_samples(
                diffusion, DiffusionRequest, guidance_scale=1.0
            ),
            "diffusion_ddim_20": conditional_samples(
                diffusion, DiffusionRequest, sampler=DDIMSampler(steps=20)
            ),
        }
    )
    for name, images in extra.items():
        figures[name] = evaluator.score(images, wanted).model_dump()
        print(f"{name}: {figures[name]}")
    (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
