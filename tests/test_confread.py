"""Reading typed values: secrets are never echoed, even when mistyped."""

from __future__ import annotations

import pytest

from monagent.config import loads
from monagent.confread import ConfigError


def problems(text: str) -> list:
    with pytest.raises(ConfigError) as info:
        loads(text, "agent.toml", {})
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    "value, kind",
    [
        ("314159265358979", "a number"),
        ("2.71828", "a number"),
        ("true", "true or false"),
        ('["SECabc"]', "an array"),
        ("1979-05-27T07:32:00Z", "a date or time"),
    ],
)
def test_a_mistyped_secret_is_reported_without_its_value(value, kind):
    found = problems(f'[notifiers.dingtalk.ops]\naccess_token = "tok"\nsecret = {value}\n')
    assert found == [f"agent.toml:3: notifiers.dingtalk.ops.secret: must be a string, got {kind} (its value is not shown)"]
