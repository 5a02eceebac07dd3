"""One model-reference grammar for every command, and the metric-name grammar, tested once."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from prodgan.cli import app
from prodgan.errors import ProdganError
from prodgan.names import (
    ModelRef,
    metric_name,
    model_ref,
    parse_model_ref,
    parse_samples,
    sample_suffix,
)

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("models:/shoes@champion", ModelRef(name="shoes", alias="champion")),
        ("models:/shoes/3", ModelRef(name="shoes", version="3")),
        ("shoes@challenger", ModelRef(name="shoes", alias="challenger")),
        ("shoes/12", ModelRef(name="shoes", version="12")),
        ("@previous", ModelRef(name="default", alias="previous")),
        ("7", ModelRef(name="default", version="7")),
        (f"runs:/{RUN}", ModelRef(run_id=RUN)),
        (f"runs:/{RUN}/generator", ModelRef(run_id=RUN, path="generator")),
    ],
)
def test_every_accepted_form(text: str, expected: ModelRef) -> None:
    assert parse_model_ref(text, "default") == expected


@pytest.mark.parametrize(
    "text", ["models:/a/b/c", "shoes", "runs:/xyz", "models:/shoes@", "@", "models:/@x y", "3.5"]
)
def test_malformed_references_name_every_form(text: str) -> None:
    with pytest.raises(
        ProdganError, match="cannot read model reference .*models:/NAME@ALIAS.*runs:/RUN_ID"
    ):
        parse_model_ref(text, "default")


def test_bundle_and_reference_are_exclusive_and_the_default_is_the_champion(tmp_path: Path) -> None:
    assert model_ref(None, None, "m") == ModelRef(name="m", alias="champion")
    assert model_ref(None, tmp_path, "m").bundle == tmp_path
    with pytest.raises(ProdganError, match="not both"):
        model_ref("m@champion", tmp_path, "m")
    with pytest.raises(ProdganError, match="name a model"):
        model_ref(None, None, "m", default_alias=None)


def test_uri_round_trips() -> None:
    for ref in (
        ModelRef(name="m", alias="champion"),
        ModelRef(name="m", version="2"),
        ModelRef(run_id=RUN, path="generator"),
    ):
        assert parse_model_ref(ref.uri, "other") == ref


def test_metric_names_carry_the_sample_count() -> None:
    assert [sample_suffix(n) for n in (50, 1000, 2500)] == ["50", "1k", "2500"]
    assert parse_samples("10k") == 10000 and parse_samples("50") == 50
    assert metric_name("kid_std", 1000) == "kid_1k_std"


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "models:/a/b/c"],
        ["generate", "--model", "models:/a/b/c", "--out", "x.png"],
        ["serve", "--model", "models:/a/b/c"],
        ["audit", "model", "models:/a/b/c"],
        ["promote", "models:/a/b/c"],
        ["edit", "transfer", "--model", "models:/a/b/c", "--to", "coat", "--out", "x.png"],
        ["edit", "interpolate", "--model", "models:/a/b/c", "--out", "x.png"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_command_reads_references_the_same_way(args: list[str], project, monkeypatch) -> None:
    """A malformed reference is refused by the one grammar before any model or server is touched."""
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ProdganError), result.output
    assert "cannot read model reference 'models:/a/b/c'" in str(result.exception)
