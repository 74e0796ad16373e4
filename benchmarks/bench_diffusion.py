"""Diffusion sampling: time per image and digits FID for DDPM (1,000 steps) and DDIM (50, 20 steps).

Usage::

    python benchmarks/bench_diffusion.py [--quick] [--model runs/digits/diffusion] [--threads 1]

The model is the class-conditional digits diffusion model saved by
``benchmarks/train_digits.py`` (or, when none is there, one trained here for
``--train-seconds``). Every sampler runs the same model, the same seeds and
classifier-free guidance 2. Timing: a warm-up call, then repeated calls of
``--batch`` images (median, min, max per image); quality: digits FID of
``--samples`` images of random digits (from a fixed seed) against the held-out
test digits, next to the FID of as many real training digits and of Gaussian
noise. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from genarch.data.digits import load_digits
from genarch.models.diffusion import DDIMSampler, DDPMSampler, Diffusion, DiffusionRequest
from genarch.models.image_eval import DigitsEvaluator, classifier_accuracy, train_digit_classifier
from genarch.models.image_training import train_objective
from genarch.schemas import ImageResult


def run_result(
    model: Diffusion, sampler: DDPMSampler | DDIMSampler, count: int, seed: int
) -> ImageResult:
    """``count`` samples of random digits (drawn from the seed), guidance 2."""
    return model.generate(DiffusionRequest(num_samples=count, seed=seed, sampler=sampler))


def run(
    model: Diffusion, sampler: DDPMSampler | DDIMSampler, count: int, seed: int
) -> torch.Tensor:
    return run_result(model, sampler, count, seed).images


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="under a minute: fewer images and repeats"
    )
    parser.add_argument("--model", default="runs/digits/diffusion")
    parser.add_argument("--train-seconds", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeats, args.batch, args.train_seconds = 30, 2, 5, 15.0
    torch.set_num_threads(args.threads)
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {args.threads}")
    if importlib.util.find_spec("diffusers") is None:
        print("diffusers: not installed, no peer column (genarch's samplers are measured alone)")

    digits = load_digits()
    classifier = train_digit_classifier(digits.train, steps=150 if args.quick else 800)
    accuracy = classifier_accuracy(classifier, digits.test)
    evaluator = DigitsEvaluator(classifier, digits.test.inputs)
    baselines = evaluator.baselines(digits.train.inputs, args.samples)
    if Path(args.model, "config.json").is_file():
        model = Diffusion.load(args.model)
        origin = f"loaded from {args.model}"
    else:
        torch.manual_seed(0)
        model = Diffusion(num_classes=10, width=24)
        report = train_objective(model.objective(), digits.train.as_batch(), steps=100_000, batch_size=96,
                                 learning_rate=2e-3, seconds=args.train_seconds)  # fmt: skip
        origin = f"trained here for {report.steps} steps ({report.wall_seconds:.0f} s)"
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters, {origin}; classifier held-out accuracy {accuracy:.3f}")

    samplers = {
        "DDPM 1000": DDPMSampler(),
        "DDIM 50": DDIMSampler(steps=50),
        "DDIM 20": DDIMSampler(steps=20),
    }
    rows, figures = [], {}
    run(model, DDIMSampler(steps=5), 2, 0)  # warm-up
    for name, sampler in samplers.items():
        seconds = []
        for repeat in range(args.repeats):
            tick = time.perf_counter()
            run(model, sampler, args.batch, repeat)
            seconds.append((time.perf_counter() - tick) / args.batch)
        result = run_result(model, sampler, args.samples, 1000)  # random digits, seeded
        scores = evaluator.score(result.images, torch.tensor(result.labels))
        figures[name] = {
            "ms_per_image_median": 1000 * statistics.median(seconds),
            "ms_per_image_min": 1000 * min(seconds),
            "ms_per_image_max": 1000 * max(seconds),
            "fid": scores.fid,
            "class_accuracy": scores.class_accuracy,
            "diversity": scores.diversity,
        }
        rows.append((name, figures[name]))

    print(
        f"\n{args.samples} images of random digits per sampler, batch {args.batch} for timing, {args.repeats} repeats"
    )
    print(
        "| sampler | network calls | ms / image (median, min-max) | digits FID | class accuracy | diversity |"
    )
    print("|---|---|---|---|---|---|")
    for name, f in rows:
        calls = samplers[name].steps or model.config.schedule.num_timesteps
        print(f"| {name} | {calls} x 2 (guidance) | {f['ms_per_image_median']:.1f} "
              f"({f['ms_per_image_min']:.1f}-{f['ms_per_image_max']:.1f}) | {f['fid']:.1f} | "
              f"{f['class_accuracy']:.3f} | {f['diversity']:.2f} |")  # fmt: skip
    noise, real = baselines["gaussian_noise"], baselines["real_training_digits"]
    print(f"| real training digits | - | - | {real.fid:.1f} | - | {real.diversity:.2f} |")
    print(f"| Gaussian noise | - | - | {noise.fid:.1f} | - | {noise.diversity:.2f} |")
    ddpm = figures["DDPM 1000"]["ms_per_image_median"]
    summary = {
        "threads": args.threads,
        "samples": args.samples,
        "classifier_accuracy": accuracy,
        "samplers": figures,
        "baseline_fid_real_training": real.fid,
        "baseline_fid_noise": noise.fid,
        "speedup_ddim50_vs_ddpm": ddpm / figures["DDIM 50"]["ms_per_image_median"],
        "speedup_ddim20_vs_ddpm": ddpm / figures["DDIM 20"]["ms_per_image_median"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
