#!/usr/bin/env python3
"""expect.py SCENARIO SERIAL_LOG - the VM stage's check of one scenario, from the guest's console.

Passes when, in the boot after the event, the robot received exactly one request and accepted it,
the agent classified the previous boot's end as the scenario needs (its log line "the previous boot
was explained in N s: KIND"), the message carries what only the real event can put there (the
kernel's own panic words, the dump directory, the pstore backend, the last kernel line written
before the reset), no denial of the agent shows in the guest's journal, and the agent ran under its
own hardened unit, never restarted. Wording is not checked (the message texts change); the
structure is. Prints the one message's text and, last, a one-line reason. Exit 0 = pass.

The driver (guest/monagent-vm-driver) writes "MONAGENT-VM: ..." lines to the serial console; the
robot log comes as base64 chunks "ROBOT64 N CHUNK" followed by "ROBOT-COUNT N".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from typing import Dict, List, Tuple

TAG = "MONAGENT-VM: "
EXPLAINED = re.compile(r"previous boot was explained in [\d.]+ s: (?P<end>[a-z_]+)")

# scenario: (the verdict the agent must reach, patterns the one message must hold, what it is)
NEEDS: Dict[str, Tuple[str, List[str], str]] = {
    "kdump": ("crash_dump", [r"sysrq triggered crash", r"/var/crash/\d{12}"], "the crash card naming the dump and the panic"),
    "pstore": ("crash_pstore", [r"sysrq triggered crash", r"ramoops"], "the panic reason from the ramoops pstore record"),
    "reset": ("unplanned", [r"the host is about to be reset \(SysRq-b\)"], "an unplanned reboot with the last kernel lines"),
    "reboot": ("planned", [r"The system will reboot now"], "the planned notice with logind's announcement"),
}


# the agent under its own hardened unit as shipped (systemctl show, printed by the driver in boot 2)
UNIT = {
    "ActiveState": "active",
    "User": "monagent",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "NRestarts": "0",
    "FragmentPath": "/etc/systemd/system/monagent.service",
}


class ConsoleError(Exception):
    pass


def tagged_lines(text: str) -> List[str]:
    # the getty's "login: " prompt has no newline, so a tag may start mid-line
    return [line.split(TAG, 1)[1].rstrip() for line in text.splitlines() if TAG in line]


def robot_requests(tagged: List[str]) -> List[dict]:
    chunks: Dict[int, List[str]] = {}
    count = None
    for line in tagged:
        words = line.split()
        if len(words) == 3 and words[0] == "ROBOT64" and words[1].isdigit():
            chunks.setdefault(int(words[1]), []).append(words[2])
        elif len(words) == 2 and words[0] == "ROBOT-COUNT" and words[1].isdigit():
            count = int(words[1])
    if count is None:
        raise ConsoleError("no ROBOT-COUNT line: the driver did not report the robot log")
    if sorted(chunks) != list(range(1, count + 1)):
        raise ConsoleError(f"the console holds robot lines {sorted(chunks)}, the driver reported {count}")
    requests = []
    for n in range(1, count + 1):
        try:
            requests.append(json.loads(base64.b64decode("".join(chunks[n]), validate=True).decode("utf-8")))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ConsoleError(f"robot line {n} arrived damaged on the console: {exc}") from None
    return requests


def message_text(body: dict) -> str:
    part = body.get(body.get("msgtype", ""), {})
    if isinstance(part, dict):
        return str(part.get("text") or part.get("content") or json.dumps(part, ensure_ascii=False))
    return json.dumps(part, ensure_ascii=False)


def check(scenario: str, serial: str) -> Tuple[bool, str]:
    tagged = tagged_lines(serial)
    if "DONE" not in tagged:
        fails = [t for t in tagged if t.startswith("FAIL")]
        return False, f"the guest did not finish the scenario ({fails[0] if fails else 'no DONE line'})"
    try:
        robot = robot_requests(tagged)
    except ConsoleError as exc:
        return False, str(exc)
    accepted = [r for r in robot if r.get("errcode") == 0 and isinstance(r.get("message"), dict)]
    denials = sorted({t for t in tagged if t.startswith("DENIAL ")})
    ends = [m.group("end") for t in tagged if t.startswith("AGENT ") for m in [EXPLAINED.search(t)] if m]
    for entry in accepted:
        print(f"---- message ({entry['message'].get('msgtype')}) ----")
        print(message_text(entry["message"]))
    for entry in robot:
        if entry not in accepted:
            print(f"---- refused request: {json.dumps(entry, ensure_ascii=False)[:500]}")
    for denial in denials:
        print(denial)
    end, patterns, what = NEEDS[scenario]
    if len(accepted) != 1 or len(robot) != 1:
        return False, f"{len(accepted)} accepted messages ({len(robot)} requests) after the event, expected exactly 1"
    if ends != [end]:
        return False, f"the agent explained the previous boot as {ends or 'nothing'}, expected [{end!r}]"
    text = json.dumps(accepted[0]["message"], ensure_ascii=False)
    missing = [p for p in patterns if not re.search(p, text)]
    if missing:
        return False, f"the message is not {what}: no match for {', '.join(missing)}"
    if denials:
        return False, f"{len(denials)} denials in the guest journal"
    shown = dict(w.split("=", 1) for t in tagged if t.startswith("UNIT ") for w in t[5:].split() if "=" in w)
    wrong = [f"{k}={shown.get(k, '?')} (expected {v})" for k, v in UNIT.items() if shown.get(k) != v]
    if wrong:
        return False, f"the agent did not run under its hardened unit as expected: {', '.join(wrong)}"
    return True, f"exactly one message ({end}), {what}; no denial"


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in NEEDS:
        print(f"usage: expect.py {{{'|'.join(NEEDS)}}} SERIAL_LOG", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
            serial = f.read()
    except OSError as exc:
        print(f"FAIL: cannot read the serial log {sys.argv[2]}: {exc.strerror}")
        return 1
    ok, reason = check(sys.argv[1], serial)
    print(f"{'PASS' if ok else 'FAIL'}: {reason}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
