#!/usr/bin/env python3
"""expect.py SCENARIO SERIAL_LOG - the VM stage's check of one scenario, from the guest's console.

Passes when the robot accepted exactly one message in the boot after the event, with the content
the scenario needs, and the agent's journal shows no denial. Prints the message text (the zh
markdown) and, last, a one-line reason.
"""

import json
import re
import sys

NEEDS = {
    # scenario: (what the one message must contain, why)
    "kdump": ([r"/var/crash/\d{12}", r"(?i)sysrq"], "the crash card naming the dump and the SysRq panic"),
    "pstore": ([r"(?i)pstore", r"(?i)sysrq", r"(?i)ramoops"], "the panic reason from the ramoops pstore record"),
    "reset": ([r"unplanned reboot", r"about to be reset"], "an unplanned reboot with the last kernel lines"),
    "reboot": ([r"planned reboot"], "the planned notice"),
}


def main() -> int:
    scenario, path = sys.argv[1], sys.argv[2]
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    tagged = [line.split("MONAGENT-VM: ", 1)[1] for line in lines if "MONAGENT-VM: " in line]
    if not any(t == "DONE" for t in tagged):
        fails = [t for t in tagged if t.startswith("FAIL")]
        print(f"FAIL: the guest did not finish the scenario ({fails[0] if fails else 'no DONE line'})")
        return 1
    robot = [json.loads(t[len("ROBOT ") :]) for t in tagged if t.startswith("ROBOT ")]
    accepted = [r for r in robot if r.get("errcode") == 0 and "message" in r]
    denials = sorted({t for t in tagged if t.startswith("DENIAL ")})
    for entry in accepted:
        body = entry["message"]
        part = body.get(body.get("msgtype", ""), {})
        print("---- message ({}) ----".format(body.get("msgtype")))
        print(part.get("text") or part.get("content") or json.dumps(part, ensure_ascii=False))
    for denial in denials:
        print(denial)
    if len(accepted) != 1 or len(robot) != 1:
        print(f"FAIL: {len(accepted)} accepted messages ({len(robot)} requests) after the event, expected exactly 1")
        return 1
    text = json.dumps(accepted[0]["message"], ensure_ascii=False)
    patterns, what = NEEDS[scenario]
    missing = [p for p in patterns if not re.search(p, text)]
    if missing:
        print(f"FAIL: the message is not {what}: no match for {', '.join(missing)}")
        return 1
    if denials:
        print(f"FAIL: {len(denials)} denials in the guest journal")
        return 1
    print(f"PASS: exactly one message, {what}; no denial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
