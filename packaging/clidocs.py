"""Generate monagent(8) and the bash completion from the argparse definitions.

The man page and the completion are built from ``monagent.cli.build_parser()`` when the
packages are built (debian/rules, packaging/rpm/monagent.spec), so they cannot drift from
the command line: a new command or option appears in both without anyone editing them.

    python3 packaging/clidocs.py man  > monagent.8
    python3 packaging/clidocs.py bash > monagent.bash-completion

Run it from the source tree (or with monagent importable). ``SOURCE_DATE_EPOCH`` sets the
page's date, for reproducible builds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monagent import __version__
from monagent.cli import build_parser

# Not in argparse: where things are and what the exit codes mean (docs/ and DECISIONS).
FILES = (
    ("/etc/monagent/agent.toml", "The configuration (TOML). Mode 0640, group monagent: it may hold a robot's secret."),
    (
        "/etc/monagent/checks.d/",
        "Check plugins: NAME.py provides the check type NAME. Owned by root, not group- or world-writable.",
    ),
    ("/var/lib/monagent/", "The agent's state: alert states, the outbox of unsent messages, silences."),
    ("/run/monagent/", "The control socket that status, silence, ack and reload use while the agent runs."),
    ("/lib/systemd/system/monagent.service", "The hardened unit the packages ship (a pip install writes /etc/systemd/system/)."),
)
EXIT_STATUS = (
    ("0", "Success. For check: every result OK."),
    ("1, 2, 3", "check only: the worst result was WARNING, CRITICAL or UNKNOWN (a configuration error is 3)."),
    ("64", "Usage error: a bad option, an unknown alert key or silence ID."),
    ("73", "The state or runtime directory cannot be created."),
    ("75", "Temporary failure: the agent's socket is busy or a starting agent holds the lock; try again."),
    ("77", "Permission denied: another user's state or socket, or install without root."),
    ("78", "Invalid configuration (every problem is printed with file, line and key); systemd does not restart on it."),
)
SEE_ALSO = "systemctl(1), journalctl(1), systemd.exec(5), systemd-sysusers(8)"


@dataclass
class Option:
    flags: Tuple[str, ...]  # empty for a positional argument
    metavar: str  # what follows the flag ("" for a switch)
    help: str
    choices: Tuple[str, ...] = ()
    takes_path: bool = False


@dataclass
class Command:
    path: Tuple[str, ...]  # ("silence", "add")
    help: str
    description: str
    epilog: str
    options: List[Option] = field(default_factory=list)
    children: List[Command] = field(default_factory=list)


_PATHISH = re.compile(r"FILE|DIR|PATH")


def _option(action: argparse.Action, parser: argparse.ArgumentParser) -> Option:
    choices = tuple(str(c) for c in action.choices) if action.choices and not isinstance(action.choices, dict) else ()
    if action.nargs == 0:
        metavar = ""
    else:
        formatter = parser._get_formatter()
        default = action.dest.upper() if action.option_strings else action.dest
        metavar = formatter._format_args(action, default)
    help_text = (action.help or "") % {"default": action.default, "prog": parser.prog} if action.help else ""
    takes_path = bool(_PATHISH.search(metavar)) or action.type is Path
    return Option(tuple(action.option_strings), metavar, help_text, choices, takes_path)


def describe(parser: argparse.ArgumentParser, path: Tuple[str, ...] = (), help_text: str = "") -> Command:
    """The command tree of ``parser``: options, positionals and subcommands, in order."""
    command = Command(path, help_text, parser.description or "", parser.epilog or "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                command.children.append(describe(sub, path + (name,), helps.get(name, "")))
        elif not isinstance(action, argparse._HelpAction) and action.help is not argparse.SUPPRESS:
            command.options.append(_option(action, parser))
    return command


def walk(command: Command) -> List[Command]:
    out = [command]
    for child in command.children:
        out.extend(walk(child))
    return out


# ---------------------------------------------------------------- man page


def _roff(text: str) -> str:
    """Plain text as roff: backslashes escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e")
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _dash(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-")


def _synopsis(command: Command) -> str:
    words = [f"\\fBmonagent {_dash(' '.join(command.path))}\\fR"]
    for opt in command.options:
        if opt.flags:
            flag = f"\\fB{_dash(opt.flags[-1])}\\fR"
            words.append(f"[{flag} \\fI{_dash(opt.metavar)}\\fR]" if opt.metavar else f"[{flag}]")
        else:
            words.append(f"\\fI{_dash(opt.metavar)}\\fR")
    if command.children:
        words.append("\\fICOMMAND\\fR")
    return " ".join(words)


def _epilog(text: str) -> List[str]:
    """An epilog (usually examples) kept line for line."""
    out = [".PP", ".nf"]
    out.extend(_roff(line) if line.strip() else "" for line in text.splitlines())
    out.append(".fi")
    return [line for line in out if line != ""]


def _options(options: Sequence[Option]) -> List[str]:
    out = []
    for opt in options:
        if opt.flags:
            head = ", ".join(f"\\fB{_dash(f)}\\fR" for f in opt.flags)
            if opt.metavar:
                head += f" \\fI{_dash(opt.metavar)}\\fR"
        else:
            head = f"\\fI{_dash(opt.metavar)}\\fR"
        text = opt.help
        out += [".TP", head, _roff(text) or "\\&"]
    return out


def manpage(parser: Optional[argparse.ArgumentParser] = None, date: Optional[str] = None) -> str:
    root = describe(parser or build_parser())
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch else time.time()))
    lines = [
        ".\\\" Generated by packaging/clidocs.py from monagent's argparse definitions; do not edit.",
        f'.TH MONAGENT 8 "{date}" "monagent {__version__}" "System Administration"',
        ".SH NAME",
        "monagent \\- server monitoring agent that raises one alert per problem and delivers it",
        ".SH SYNOPSIS",
        "\\fBmonagent\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".br",
        "\\fBmonagent\\fR \\fB\\-\\-version\\fR",
        ".SH DESCRIPTION",
        _roff(root.description),
        ".PP",
        "Each command is described below; \\fBmonagent\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR prints the same text.",
        ".SH COMMANDS",
    ]
    for command in walk(root)[1:]:
        if not command.options and command.children and not command.description:
            lines += [".SS " + _dash(" ".join(command.path)), _roff(command.help)]
            continue
        lines += [".SS " + _dash(" ".join(command.path)), _synopsis(command), ".PP", _roff(command.description or command.help)]
        lines += _options(command.options)
        if command.epilog:
            lines += _epilog(command.epilog)
    if root.options:
        lines += [".SH OPTIONS"] + _options(root.options)
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines.append(".SH FILES")
    for path, meaning in FILES:
        lines += [".TP", f"\\fI{_dash(path)}\\fR", _roff(meaning)]
    lines += [
        ".SH EXAMPLES",
        ".nf",
        "monagent validate \\-c /etc/monagent/agent.toml",
        "monagent check \\-\\-json",
        "monagent check disks \\-\\-nagios        # for NRPE or Icinga",
        "systemctl reload monagent               # re\\-read the configuration",
        ".fi",
        ".SH SEE ALSO",
        SEE_ALSO,
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- bash completion


def _case_body(command: Command) -> str:
    words = [name for opt in command.options for name in opt.flags] + ["--help"]
    words += [child.path[-1] for child in command.children]
    return " ".join(words)


def bash_completion(parser: Optional[argparse.ArgumentParser] = None) -> str:
    """A bash completion for monagent: commands, subcommands, options, choices, and files after FILE/DIR options."""
    root = describe(parser or build_parser())
    words_cases, value_cases = [], []
    for command in walk(root):
        key = " ".join(command.path)
        words_cases.append(f'        "{key}") words="{_case_body(command)}" ;;')
        for opt in command.options:
            if not opt.flags or not opt.metavar:
                continue
            flags = "|".join(f'"{key}/{flag}"' for flag in opt.flags)
            if opt.choices:
                value_cases.append(f'        {flags}) COMPREPLY=($(compgen -W "{" ".join(opt.choices)}" -- "$cur")); return ;;')
            elif opt.takes_path and "DIR" in opt.metavar:
                value_cases.append(f'        {flags}) COMPREPLY=($(compgen -d -- "$cur")); return ;;')
            elif opt.takes_path:
                value_cases.append(f'        {flags}) COMPREPLY=($(compgen -f -- "$cur")); return ;;')
            else:
                value_cases.append(f"        {flags}) return ;;")
    subcommands = sorted({" ".join(c.path) for c in walk(root) if c.path})
    return f"""# bash completion for monagent(8)
# Generated by packaging/clidocs.py from monagent's argparse definitions; do not edit.

_monagent()
{{
    local cur prev words cmd w i
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    # The command path so far: the words that name (sub)commands.
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        [[ "|{"|".join(subcommands)}|" == *"|${{cmd:+$cmd }}$w|"* ]] && cmd="${{cmd:+$cmd }}$w"
    done
    case "$cmd/$prev" in
{chr(10).join(value_cases)}
    esac
    case "$cmd" in
{chr(10).join(words_cases)}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _monagent monagent
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in (["man"], ["bash"]):
        print("usage: clidocs.py man|bash", file=sys.stderr)
        return 64
    sys.stdout.write(manpage() if args == ["man"] else bash_completion())
    return 0


if __name__ == "__main__":
    sys.exit(main())
