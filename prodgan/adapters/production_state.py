"""One command's view of a model's production: read from MLflow once, then handed down.

`ProductionState.read(settings)` reads the production model's aliases and audit head in one
pass; the signed audit chain is read (and every signature checked) the first time something
needs it, and never again in that command. `resolve(ref)` is the one place a model reference
becomes a verified local copy: `@champion`/`@previous` and production versions are the
promoter's copies, each file checked against the promoter's signed record; other versions are
checked against their registration tags; a run's bundle against its own record.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from prodgan.adapters import audit, model_store, registry, signing
from prodgan.adapters.model_store import ResolvedModel
from prodgan.adapters.tracking import get_run
from prodgan.errors import ProdganError
from prodgan.names import (
    CHAMPION,
    GENERATOR_ARTIFACT,
    MODEL_FILES,
    MODEL_FILES_SHA,
    PREVIOUS,
    WEIGHTS,
    ModelRef,
    parse_model_ref,
    production_model,
)
from prodgan.policy import chain
from prodgan.policy.files import changed_files, registration_problems
from prodgan.settings import Settings


class ProductionState:
    """The aliases, the signature-checked audit chain and the one resolver of one model."""

    def __init__(self, settings: Settings, client: Any, aliases: registry.Production) -> None:
        self.settings = settings
        self.client = client
        self.aliases = aliases

    @classmethod
    def read(cls, settings: Settings) -> "ProductionState":
        """The production of `settings.model_name` as it stands now."""
        client = registry.client_for(settings)
        return cls(settings, client, registry.production_state(client, settings.model_name))

    @classmethod
    def for_ref(cls, settings: Settings, ref: ModelRef | str) -> tuple["ProductionState", ModelRef]:
        """The production state of the model a reference names (its own chain and copies), and the
        parsed reference."""
        if isinstance(ref, str):
            ref = parse_model_ref(ref, settings.model_name)
        return cls.read(settings.for_model(ref.name)), ref

    @property
    def model(self) -> str:
        return self.settings.model_name

    @property
    def production(self) -> str:
        return production_model(self.model)

    # ------------------------------------------------------------ the chain, read once

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every stored record of the chain (decisions and `done` marks), by place."""
        return audit.chain(self.settings, self.model)

    @cached_property
    def signed(self) -> list[bool]:
        """Whether each record's signature verifies with the configured public key."""
        return [signing.verify(self.settings, record) for record in self.records]

    @cached_property
    def head_signed(self) -> bool:
        """Whether the production model's audit head tag carries the promoter's signature."""
        return audit.head_signed(self.settings, self.model, self.aliases.head)

    @property
    def signed_head(self) -> str | None:
        """The audit head tag if the promoter's key signed it, else None."""
        return self.aliases.head if self.head_signed else None

    @cached_property
    def decisions(self) -> list[dict[str, Any]]:
        """The chain's decisions, each with its `state` (pending, done or final)."""
        return chain.decisions(self.records)

    def record_for(self, production_version: str) -> dict[str, Any]:
        """The promoter's signed, finished record that made `production_version`; GateFailed if
        none."""
        valid = frozenset(
            str(r.get("audit_run_id"))
            for r, ok in zip(self.records, self.signed, strict=True)
            if ok
        )
        return chain.production_record(self.decisions, valid, self.model, production_version)

    # ------------------------------------------------------------ references -> versions

    def version(self, ref: ModelRef) -> Any:
        """The trained model version a registered reference names, by alias or number.

        `champion`/`previous` live on the production twin, where only promoters write, on every
        model: a trainer's own alias of that name on a model of its making is never honoured."""
        if ref.alias in (CHAMPION, PREVIOUS):
            trained = self.aliases.champion if ref.alias == CHAMPION else self.aliases.previous
            if trained is None:
                raise self._no_alias_yet(ref.alias)
            return self.trained(trained)
        if ref.alias:
            return registry.require_alias(self.client, str(ref.name), ref.alias)
        return registry.get_version(self.client, str(ref.name), str(ref.version))

    def trained(self, version: str) -> Any:
        """Trained version `version` of this model."""
        return registry.get_version(self.client, self.model, version)

    def production_version(self, ref: ModelRef) -> str:
        """The production version a reference to the promoter's copies names."""
        if ref.alias in (CHAMPION, PREVIOUS):
            held = (
                self.aliases.champion_version
                if ref.alias == CHAMPION
                else self.aliases.previous_version
            )
            if held is None:
                raise self._no_alias_yet(ref.alias)
            return held
        if ref.alias:
            return str(registry.require_alias(self.client, self.production, ref.alias).version)
        return str(registry.get_version(self.client, self.production, str(ref.version)).version)

    def _no_alias_yet(self, alias: str) -> ProdganError:
        return ProdganError(
            f"model {self.model} has no alias @{alias} yet; promote a version first "
            f"(`prodgan promote VERSION`) or use models:/{self.model}/VERSION"
        )

    # ------------------------------------------------------------ verified local copies

    def production_problems(self, record: dict[str, Any]) -> model_store.Problems:
        """What is wrong with a production copy's files, measured against the promoter's record."""
        expected = record.get("model_files") or {}

        def problems(actual: dict[str, str]) -> list[str]:
            return [change.describe("the promoter") for change in changed_files(expected, actual)]

        return problems

    def production_copy(self, version: str) -> tuple[dict[str, Any], str, model_store.Problems]:
        """(signed record, cache key, file check) of production `version`'s copy."""
        record = self.record_for(version)
        files = record.get("model_files") or {}
        key = model_store.content_key("production", *(f"{p} {h}" for p, h in sorted(files.items())))
        return record, key, self.production_problems(record)

    def trained_problems(self, mv: Any) -> model_store.Problems:
        """What is wrong with a trained version's files, measured against its registration tags."""
        tags = mv.tags or {}
        source = f"{mv.name} v{mv.version}"

        def problems(actual: dict[str, str]) -> list[str]:
            weights = model_store.weights_path(actual, source)
            files = registry.registered_file_map(self.client, mv)
            found = registration_problems(tags.get(WEIGHTS), files, actual, weights)
            return [f"v{mv.version}: {p}" for p in found]

        return problems

    def trained_key(self, mv: Any) -> str:
        tags = mv.tags or {}
        return model_store.content_key(
            "trained", str(tags.get(WEIGHTS)), str(tags.get(MODEL_FILES_SHA, tags.get(MODEL_FILES)))
        )

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        """A reference -> the verified local bundle it names, and where it came from (cached)."""
        if ref.bundle is not None:
            raise ProdganError(
                "a local bundle needs no resolving; load it with `prodgan.models.load_bundle`"
            )
        if ref.run_id:
            return self._resolve_run(ref)
        if ref.name not in (self.model, self.production):
            raise ProdganError(f"{ref.uri} is not a version of {self.model}")
        if ref.name == self.production or ref.alias in (CHAMPION, PREVIOUS):
            return self._resolve_production(ref)
        mv = self.version(ref)
        what = f"{mv.name} v{mv.version}"
        bundle, hashes = model_store.loaded_copy(
            self.settings, self.trained_key(mv), _source(mv), self.trained_problems(mv), what
        )
        return ResolvedModel(
            bundle,
            ref.uri,
            mv.name,
            str(mv.version),
            mv.run_id,
            dict(mv.tags or {}),
            bundle_hashes=hashes,
        )

    def _resolve_production(self, ref: ModelRef) -> ResolvedModel:
        version = self.production_version(ref)
        record, key, problems = self.production_copy(version)
        what = f"production v{version} of {self.model} (trained v{record['version']})"
        source = f"models:/{self.production}/{version}"
        bundle, hashes = model_store.loaded_copy(self.settings, key, source, problems, what)
        trained = self.trained(record["champion_after"])
        return ResolvedModel(
            bundle,
            ref.uri,
            self.model,
            str(trained.version),
            trained.run_id,
            {**(trained.tags or {}), WEIGHTS: record["weights_sha256"]},
            production_version=version,
            bundle_hashes=hashes,
        )

    def _resolve_run(self, ref: ModelRef) -> ResolvedModel:
        run = get_run(self.client, str(ref.run_id), "run")
        path = ref.path or GENERATOR_ARTIFACT
        bundle = model_store.run_copy(self.settings, self.client, str(ref.run_id), path)
        return ResolvedModel(bundle, ref.uri, run_id=ref.run_id, tags=dict(run.data.tags))


def foreign_code(actual: dict[str, str], uri: str) -> list[str]:
    """Stored Python files that are not prodgan's fixed loader. prodgan never runs them (it loads
    with its installed code), but a plain MLflow client loading `uri` would."""
    from prodgan.adapters.serving import MODEL_CODE
    from prodgan.fsutil import sha256_file

    loader = sha256_file(MODEL_CODE / "generator.py")
    return [
        f"{path} is not prodgan's fixed loader: a plain MLflow client loading {uri} would run it "
        f"(prodgan never does)"
        for path, digest in sorted(actual.items())
        if path.endswith(".py") and digest != loader
    ]


def _source(mv: Any) -> str:
    return f"models:/{mv.name}/{mv.version}"


def resolve_model(settings: Settings, ref: ModelRef | str) -> ResolvedModel:
    """A reference (or any form it parses) -> verified local bundle, for a command that needs
    nothing else of production."""
    state, parsed = ProductionState.for_ref(settings, ref)
    return state.resolve(parsed)
