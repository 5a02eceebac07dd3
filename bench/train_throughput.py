"""Training throughput: pytorch/examples-style DCGAN vs prodgan's trainer, same process,
same device.

(a) baseline, written like pytorch/examples `dcgan/main.py` on an image folder: 64x64, nz=100,
    ngf=ndf=64, BCE, Adam(2e-4, betas 0.5/0.999), batch 128, ImageFolder + DataLoader
    (Resize, ToTensor, Normalize; 2 workers), fp32.
(b) prodgan's `train()` on configs/fmnist.yaml (28x28 native, data resident on the device,
    bf16 + channels_last + fused Adam on CUDA).
Prints images/s of each and the ratio. Targets: >= 2x on CPU, >= 5x on a GPU.

    .venv/bin/python bench/train_throughput.py [--warmup 4] [--steps 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------- (a)
# pytorch/examples dcgan/main.py


class BaselineG(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class BaselineD(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def baseline_images_per_s(
    image_dir: Path, device: torch.device, warmup: int, steps: int, batch: int = 128
) -> float:
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(
        root=str(image_dir),
        transform=transforms.Compose(
            [
                transforms.Resize(64),
                transforms.CenterCrop(64),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        ),
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=2)
    netG, netD = BaselineG().to(device), BaselineD().to(device)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data_iter = iter(loader)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        real_cpu = next(data_iter)[0].to(device)
        b = real_cpu.size(0)
        netD.zero_grad()
        errD_real = criterion(netD(real_cpu), torch.full((b,), 1.0, device=device))
        errD_real.backward()
        fake = netG(torch.randn(b, 100, 1, 1, device=device))
        errD_fake = criterion(netD(fake.detach()), torch.full((b,), 0.0, device=device))
        errD_fake.backward()
        optimizerD.step()
        netG.zero_grad()
        errG = criterion(netD(fake), torch.full((b,), 1.0, device=device))
        errG.backward()
        optimizerG.step()
        errD_real.item(), errG.item()  # the example prints losses every step
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


# ----------------------------------------------------------------- (b) prodgan


def prodgan_images_per_s(
    config: Path, data, device: torch.device, warmup: int, steps: int, out_dir: Path
) -> float:
    from prodgan.training.config import load_config
    from prodgan.training.loop import TrainHooks, train

    stamps: dict[int, float] = {}

    class Clock(TrainHooks):
        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            # the loop syncs (loss .cpu()) right before this call
            stamps[step] = time.perf_counter()

    cfg = load_config(
        config,
        [
            f"steps={warmup + steps}",
            f"log_every={warmup}",
            "checkpoint_every=1000000",
            "grid_every=1000000",
            f"device={device}",
        ],
    )
    if steps % warmup:
        raise SystemExit("--steps must be a multiple of --warmup")
    train(cfg, data, out_dir, hooks=Clock(), progress=False)
    return steps * cfg.batch_size / (stamps[warmup + steps] - stamps[warmup])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    import tempfile

    from prodgan.adapters.dvc import pinned
    from prodgan.data.tensors import load_split
    from prodgan.settings import Settings
    from prodgan.training.distributed import pick_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first [default: 4 on CPU, 20 on GPU]",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps [default: 12 on CPU, 200 on GPU]"
    )
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fmnist.yaml")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    # fewer steps on a CPU: warm-up noise dominates
    warmup = args.warmup or (20 if device.type == "cuda" else 4)
    steps = args.steps or (200 if device.type == "cuda" else 12)

    settings = Settings.load(root=ROOT)
    dataset_root = settings.data_dir / "fashion-mnist"
    data = load_split(settings.tensor_cache_dir, dataset_root, "train", pinned(settings)["md5"])
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{warmup} warmup + {steps} timed steps each"
    )
    base = baseline_images_per_s(dataset_root / "train", device, warmup, steps)
    print(
        "(a) baseline pytorch/examples dcgan (64x64, fp32, DataLoader over PIL): "
        f"{base:10.1f} images/s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours = prodgan_images_per_s(args.config, data, device, warmup, steps, Path(tmp))
    print(
        f"(b) prodgan trainer, {args.config.name}:                                "
        f"{ours:10.1f} images/s"
    )
    target = 5 if device.type == "cuda" else 2
    print(f"ratio {ours / base:.2f}x (target >= {target}x on {device.type})")


if __name__ == "__main__":
    main()
