"""DiffAugment and class-balanced sampling: what the small-catalogue recipe relies on."""

from __future__ import annotations

import pytest
import torch

from prodgan.errors import ProdganError
from prodgan.models.augment import diff_augment, parse_policy
from prodgan.training.config import make_config
from prodgan.training.plan import check_schedule, epoch_order

ALL = ("color", "translation", "cutout")


def test_diffaugment_is_differentiable_seeded_and_changes_every_image() -> None:
    x = (
        torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ).requires_grad_(True)
    a = diff_augment(x, ALL, torch.Generator().manual_seed(1))
    b = diff_augment(x, ALL, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, diff_augment(x, ALL, torch.Generator().manual_seed(2)))
    a.square().sum().backward()
    assert x.grad is not None and (x.grad != 0).any()  # G's gradient flows through the augmentation
    with torch.no_grad():
        assert all(not torch.allclose(a[i], x[i]) for i in range(len(x)))
        cut = diff_augment(torch.ones(4, 3, 16, 16), ("cutout",), torch.Generator().manual_seed(0))
        assert (
            (cut == 0).flatten(1).float().mean(1) > 0.05
        ).all()  # a square of every image is blanked
        moved = diff_augment(x, ("translation",), torch.Generator().manual_seed(0))
        assert ((moved == 0).flatten(1).any(1)).any()  # shifted-in border pixels
    assert diff_augment(x, ()) is x


def test_unknown_policy_is_refused_before_training() -> None:
    assert parse_policy(" color, cutout ") == ("color", "cutout") and parse_policy("") == ()
    with pytest.raises(ProdganError, match="diffaugment: unknown DiffAugment policy zoom"):
        check_schedule(make_config({"diffaugment": "color,zoom", "batch_size": 4}), 100, 1)


def test_class_balanced_order_draws_categories_evenly_and_is_reproducible() -> None:
    labels = torch.tensor([0] * 900 + [1] * 100)
    order = epoch_order(len(labels), seed=3, epoch=5, labels=labels)
    share = (labels[order] == 1).float().mean().item()
    assert 0.45 < share < 0.55  # 10% of the images, half of the draws
    assert torch.equal(order, epoch_order(len(labels), seed=3, epoch=5, labels=labels))
    plain = epoch_order(len(labels), seed=3, epoch=5)
    assert sorted(plain.tolist()) == list(range(len(labels)))  # without labels: each image once
