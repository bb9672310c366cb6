"""Hostile configuration files through `monagent validate`: a mutation loop over the shipped
agent.toml. Whatever the mutation, the answer is OK (exit 0) or every problem on its own line as
``file:line: ...`` with exit 78: never a traceback, never an internal error."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable, List

import pytest

from monagent.cli import main

SHIPPED = Path(__file__).resolve().parent.parent / "agent.toml"
MUTATIONS = 600  # ~15 s on the CI machine

HOSTILE_VALUES = [
    "9" * 400,
    '"' + "9" * 400 + 's"',
    '"99999999999999999999d"',
    "-" + "9" * 30,
    "1e999",
    "nan",
    "inf",
    "-inf",
    "[" * 500 + "]" * 500,
    "{a=" * 400 + "1" + "}" * 400,
    '"http://[::1/x"',
    '"http://host:99999/"',
    '"http://host:port/"',
    '"a\\nb"',
    '"\\u0000"',
    '"\\u2028"',
    '"' + "x" * 70000 + '"',
    "[]",
    "{}",
    "true",
    "0",
    "-1",
    "0.0000001",
    '"0"',
    '"-5s"',
    '"1h30"',
    "1979-05-27T07:32:00Z",
    '["a", 1, true]',
    '{ warning = "x" }',
    '"/dev/null"',
    '"/nonexistent/dir"',
    '""',
]
HOSTILE_TEXT = ["[", "]", "{", "}", '"', "'", '"""', "=", "\n", "#", ".", ",", "\\", "\x00", "[[checks]]\n", '[checks."a\\nb"]\n']


def _lines(text: str, rng: random.Random) -> List[str]:
    return text.split("\n")


def _replace_value(text: str, rng: random.Random) -> str:
    lines = _lines(text, rng)
    candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*#?\s*[A-Za-z0-9_.\"-]+\s*=", line)]
    i = rng.choice(candidates)
    key = lines[i].lstrip("# ").split("=", 1)[0].strip()
    lines[i] = f"{key} = {rng.choice(HOSTILE_VALUES)}"
    return "\n".join(lines)


def _uncomment(text: str, rng: random.Random) -> str:
    lines = _lines(text, rng)
    candidates = [i for i, line in enumerate(lines) if re.match(r"^# ?[A-Za-z\[]", line)]
    i = rng.choice(candidates)
    lines[i] = lines[i].lstrip("# ")
    return "\n".join(lines)


def _insert_text(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text))
    return text[:at] + rng.choice(HOSTILE_TEXT) + text[at:]


def _delete_span(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text))
    return text[:at] + text[at + rng.randint(1, 8) :]


def _duplicate_line(text: str, rng: random.Random) -> str:
    lines = _lines(text, rng)
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines)), lines[i])
    return "\n".join(lines)


def _hostile_section(text: str, rng: random.Random) -> str:
    name = rng.choice(['"a\\nb"', "x", '"\\u001b[31mred"', "cpu"])
    kind = rng.choice(['"cpu"', '"c\\npu"', '"disk"', '"nagios"', "1", '"' + "z" * 300 + '"'])
    extra = rng.choice(["", f"interval = {rng.choice(HOSTILE_VALUES)}\n", f"timeout = {rng.choice(HOSTILE_VALUES)}\n"])
    return text + f"\n[checks.{name}]\ntype = {kind}\n{extra}"


MUTATORS: List[Callable[[str, random.Random], str]] = [
    _replace_value,
    _replace_value,
    _uncomment,
    _insert_text,
    _delete_span,
    _duplicate_line,
    _hostile_section,
]


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(MUTATORS)(text, rng)
    return text


def _base(tmp_path: Path) -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^#?\s*state_dir\s*=.*$", f'state_dir = "{tmp_path / "state"}"', text, count=1)
    return re.sub(r"(?m)^#?\s*runtime_dir\s*=.*$", f'runtime_dir = "{tmp_path / "run"}"', text, count=1)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_configs_give_file_line_problems_and_exit_78_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rng = random.Random(seed)
    base = _base(tmp_path)
    path = tmp_path / "agent.toml"
    where = re.compile(re.escape(str(path)) + r":\d+: \S")
    failures = []
    for number in range(MUTATIONS // 4):
        text = _mutate(base, rng)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        path.chmod(0o600)
        code = main(["validate", "-c", str(path)])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
        problems = [line for line in lines if not line.startswith("monagent: ")]
        bad = [line for line in problems if not where.match(line) or "a bug in monagent" in line]
        if code not in (0, 78) or bad or "Traceback" in err or (code == 78 and not problems):
            failures.append((number, code, bad or err[-500:]))
            (tmp_path / f"failing-{number}.toml").write_text(text, encoding="utf-8", errors="surrogateescape")
    assert failures == []
