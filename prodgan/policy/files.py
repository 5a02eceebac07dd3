"""Which stored files differ from the ones a record names: the one comparison every check uses.

Loading a model, `audit verify` and the guard before every command compare {path: sha256}
maps the same way; only how they word the difference depends on who recorded the hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

from prodgan.names import MODEL_FILES, MODEL_FILES_SHA, WEIGHTS

MLFLOW_WRITTEN = frozenset({"registered_model_meta"})  # MLflow adds it to a local copy it loads
ADDED, MISSING, CHANGED = "added", "missing", "changed"


@dataclass(frozen=True)
class FileChange:
    path: str
    kind: str  # added | missing | changed
    expected: str | None
    actual: str | None

    def describe(self, recorder: str) -> str:
        """`generator.pt hashes to 1a2b…, the promoter recorded 3c4d…` (recorder: who hashed it)."""
        if self.kind == ADDED:
            return f"{self.path} was added"
        if self.kind == MISSING:
            return f"{self.path} is missing"
        return (
            f"{self.path} hashes to {str(self.actual)[:16]}…, "
            f"{recorder} recorded {str(self.expected)[:16]}…"
        )


def canonical_file_map(files: Mapping[str, str]) -> str:
    """A {path: sha256} map as the one JSON text that is stored and hashed."""
    return json.dumps(dict(files), sort_keys=True, separators=(",", ":"))


def file_map_sha256(text: str) -> str:
    """The sha256 of a stored file map's text: what a tag keeps of a map stored elsewhere."""
    return hashlib.sha256(text.encode()).hexdigest()


def changed_files(
    expected: Mapping[str, str], actual: Mapping[str, str], ignore: frozenset[str] = frozenset()
) -> list[FileChange]:
    """Every path added, missing or changed, by path; files MLflow writes on load are never
    counted."""
    skipped = MLFLOW_WRITTEN | ignore
    changes = []
    for path in sorted((set(expected) | set(actual)) - skipped):
        want, got = expected.get(path), actual.get(path)
        if want == got:
            continue
        changes.append(FileChange(path, _kind(want, got), want, got))
    return changes


def _kind(expected: str | None, actual: str | None) -> str:
    if expected is None:
        return ADDED
    if actual is None:
        return MISSING
    return CHANGED


def registration_problems(
    weights_tag: str | None, files_tag: str | None, actual: Mapping[str, str], weights_path: str
) -> list[str]:
    """What differs in a trained version's stored files from what its registration recorded.

    `weights_tag` is the sha256 of generator.pt (or of an imported model file); `files_tag` the
    JSON {path: sha256} map (None when missing or not matching its hash tag; trainer-writable, so
    parsed defensively); `actual` is hashed here; `weights_path` is where those weights lie in
    it."""
    if not weights_tag:
        return [f"has no {WEIGHTS} tag: it was not registered by prodgan or the tag was removed"]
    problems, name = [], weights_path.rsplit("/", 1)[-1]
    got = actual.get(weights_path)
    if got is None:
        problems.append(f"{name} is missing from the stored model: the weights were removed")
    elif got != weights_tag:
        problems.append(
            f"{name} hashes to {got[:16]}…, but {WEIGHTS} recorded {weights_tag[:16]}… "
            f"at registration: the weights were replaced"
        )
    expected = _file_map(files_tag)
    if expected is None:
        problems.append(
            f"has no readable {MODEL_FILES} map (a JSON map of file hashes, stored beside its "
            f"training run and hashed in the {MODEL_FILES_SHA} tag): it was not registered by "
            f"prodgan, or the map or its tag was edited"
        )
        return problems
    changes = changed_files(expected, actual, ignore=frozenset({weights_path}))
    if changes:
        listed = ", ".join(f"{c.path} ({_REGISTRATION_WORDS[c.kind]})" for c in changes)
        problems.append(
            f"model files differ from registration: {listed}; the stored model (code, MLmodel or "
            f"environment) was edited outside prodgan"
        )
    return problems


_REGISTRATION_WORDS = {ADDED: "added", MISSING: "removed", CHANGED: "changed"}


def _file_map(text: str | None) -> dict[str, str] | None:
    """A `{path: sha256}` map from its JSON tag, or None when absent or not such a map."""
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        return None
    return {str(k): v for k, v in found.items()}
