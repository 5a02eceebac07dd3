"""A tiny outside GAN trainer, as a team would bring its own: plain torch, no prodgan.

    python tiny_gan.py --data DIR --out DIR [--steps N] [--seed S]

Reads the PNGs under --data (any folder layout), trains a small DCGAN-style generator of its own
layer layout (latent (N, z, 1, 1), output in [0, 1]) for a few steps, and writes the exported
program `generator.pt2` (torch.export, any batch size) and the `spec.yaml` that declares it. When
MLflow is installed and MLFLOW_RUN_ID is set (prodgan exports both), its losses land in that run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

Z = 16


class TinyGenerator(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(Z, 32, 7, 1, 0),  # 1 -> 7
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, 2, 1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 4, 2, 1),  # 14 -> 28
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def critic(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 1),
    )


def load_images(folder: Path) -> torch.Tensor:
    pixels = [np.asarray(Image.open(path)) for path in sorted(folder.rglob("*.png"))]
    array = np.stack(pixels).astype(np.float32) / 255.0
    return torch.from_numpy(array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2))


def log_metric(name: str, value: float, step: int) -> None:
    if os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        mlflow.log_metric(name, value, step=step)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    real = load_images(args.data)
    channels = real.shape[1]
    print(f"tiny_gan: {len(real)} images {tuple(real.shape[1:])} from {args.data}")
    print(f"tiny_gan: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    G, D = TinyGenerator(channels), critic(channels)
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    for step in range(args.steps):
        batch = real[torch.randint(len(real), (32,))]
        fake = G(torch.randn(32, Z, 1, 1))
        loss_d = bce(D(batch), torch.ones(32, 1)) + bce(D(fake.detach()), torch.zeros(32, 1))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake), torch.ones(32, 1))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if step % 5 == 0 or step == args.steps - 1:
            print(f"tiny_gan: step {step} loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f}")
            log_metric("tiny_gan_loss_g", loss_g.item(), step)
    G.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(
        G,
        (torch.randn(2, Z, 1, 1),),
        dynamic_shapes={"z": {0: torch.export.Dim("n", min=1, max=4096)}},
    )
    torch.export.save(program, args.out / "generator.pt2")
    (args.out / "spec.yaml").write_text(
        f"z_dim: {Z}\n"
        "latent: {distribution: normal, shape: [N, z, 1, 1]}\n"
        f"output: {{channels: {channels}, resolution: 28, range: [0, 1]}}\n"
    )
    print(f"tiny_gan: wrote {args.out / 'generator.pt2'} and spec.yaml")


if __name__ == "__main__":
    main()
