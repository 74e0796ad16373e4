"""Draw the pictures of docs/tutorials/digits-three-ways.md from the models train_digits.py saved.

Usage::

    python benchmarks/train_digits.py --out runs/digits      # once, minutes
    python benchmarks/make_digit_pictures.py --models runs/digits --out docs/assets/digits

Writes small PNGs: real digits, one 10x10 grid per model (row d = digit d),
VAE and GAN latent interpolation strips, and a diffusion denoising trajectory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genarch.data.digits import load_digits
from genarch.models.diffusion import DDIMSampler, Diffusion, guided_noise
from genarch.models.gan import GAN
from genarch.models.pictures import save_grid
from genarch.models.vae import VAE
from genarch.schemas import ImageRequest


def digit_rows(model: VAE | GAN | Diffusion, per_digit: int = 10) -> torch.Tensor:
    rows = [
        model.generate(ImageRequest(num_samples=per_digit, label=d, seed=d)).images
        for d in range(10)
    ]
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="runs/digits")
    parser.add_argument("--out", default="docs/assets/digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root, out = Path(args.models), Path(args.out)
    digits = load_digits()
    real = torch.cat([digits.test.of_class(d)[:10] for d in range(10)])
    save_grid(real, out / "real.png", columns=10)

    vae, gan, diffusion = (
        VAE.load(root / "vae"),
        GAN.load(root / "gan"),
        Diffusion.load(root / "diffusion"),
    )
    for name, model in (("vae", vae), ("gan", gan), ("diffusion", diffusion)):
        save_grid(digit_rows(model), out / f"{name}.png", columns=10)

    # VAE: encode a real 3 and a real 8 without labels, walk between them, decode.
    pair = torch.stack([digits.test.of_class(3)[0], digits.test.of_class(8)[0]])
    z = vae.encode(pair)
    strips = [vae.decode(vae.interpolate(z[0], z[1], 10, spherical=s)) for s in (False, True)]
    save_grid(torch.cat(strips), out / "vae_interpolation.png", columns=10)

    # GAN: one label per row, walking between two random latents (spherically).
    generator = torch.Generator().manual_seed(0)
    ends = torch.randn(2, *gan.latent_shape, generator=generator)
    path = gan.interpolate(ends[0], ends[1], 10, spherical=True)
    rows = [gan.decode(path, torch.full((10,), d)) for d in (2, 5, 7)]
    save_grid(torch.cat(rows), out / "gan_interpolation.png", columns=10)

    # Diffusion: the sampling loop written out, keeping x every 5 of 50 DDIM steps.
    sampler, schedule = DDIMSampler(steps=50), diffusion.config.schedule
    abar = schedule.alphas_cumprod()
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10)
    x = torch.randn(10, 1, 8, 8, generator=generator)
    frames = [x]
    with torch.no_grad():
        for index, (t, t_prev) in enumerate(sampler.timesteps(schedule.num_timesteps)):
            eps = guided_noise(
                diffusion.denoiser.eval(), x, t, labels, diffusion.config.guidance_scale
            )
            x = sampler.step(x, eps, t, t_prev, abar, generator)
            if index % 5 == 4:
                frames.append(x)
    trajectory = torch.stack(frames, dim=1).clamp(-1, 1)  # (digit, frame, 1, 8, 8)
    save_grid(trajectory.flatten(0, 1), out / "diffusion_steps.png", columns=len(frames))
    for path in sorted(out.glob("*.png")):
        print(f"{path} {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
