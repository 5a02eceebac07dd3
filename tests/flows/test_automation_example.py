"""The automation example in docs/orchestration.md is one Prefect accepts,
and matches prodgan's event names.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from prodgan.ops import announce

DOC = Path(__file__).resolve().parents[2] / "docs" / "orchestration.md"


def test_documented_automations_are_valid_and_use_real_event_names() -> None:
    from prefect.events.schemas.automations import AutomationCore

    block = re.search(r"```yaml\n(automations:.*?)```", DOC.read_text(), re.S).group(1)
    automations = [AutomationCore.model_validate(a) for a in yaml.safe_load(block)["automations"]]
    expected = {e for a in automations for e in a.trigger.expect}
    assert expected == {
        announce.CHAMPION_MOVED,
        announce.CHALLENGER_REJECTED,
        announce.VALIDATION_FAILED,
    }
    assert [type(a.actions[0]).__name__ for a in automations] == [
        "RunDeployment",
        "SendNotification",
    ]
