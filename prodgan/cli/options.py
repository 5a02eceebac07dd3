"""Options every command that takes a model shares, so each accepts the same reference forms."""

from __future__ import annotations

MODEL_HELP = (
    "Model: models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS, NAME/VERSION, @ALIAS, VERSION or "
    "runs:/RUN_ID\\[/PATH] \\[default: models:/<model name>@champion]"
)  # \\[ : literal brackets in rich markup
BUNDLE_HELP = (
    "A local generator bundle folder (generator.pt + generator.json) instead of a registry model."
)
FORCE_HELP = "Use the registry even if `prodgan audit verify` fails (the bypass is audited)."
