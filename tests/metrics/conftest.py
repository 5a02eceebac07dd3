"""Once per session: the Inception weights (downloaded and converted into the shared cache on first
use) and the evaluator classifier trained on real Fashion-MNIST (tens of seconds of CPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def inception_weights():
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.settings import Settings

    return resolve_inception_weights(Settings.load().cache_dir)


@pytest.fixture
def feature_cache(tmp_path: Path) -> Path:
    return tmp_path / "feature-cache"


@pytest.fixture(scope="session")
def evaluator_classifier():
    """(model, test accuracy, test split): the pixel evaluator classifier, 2 epochs over 3,000 real
    train images, measured on 300 test images. Shared by the tests that need a trained one."""
    from prodgan.models.evaluator import train_evaluator
    from tests.metrics.helpers import real_split

    train, test = real_split("train", 3000), real_split("test", 300)
    model, accuracy = train_evaluator(train, test, epochs=2)
    return model, accuracy, test
