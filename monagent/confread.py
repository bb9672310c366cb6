"""Reading one TOML document into typed values, collecting every problem at once.

A :class:`Section` wraps one table of the parsed document. Its getters convert
and validate a key, record a :class:`Problem` (file, line, dotted key, message)
when the value is bad, and return the default so parsing can go on and report
the next problem too. ``finish()`` reports the keys nobody asked for, with a
"did you mean" suggestion. Nothing outside the config modules sees a raw dict.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from monagent.records import config_record

T = TypeVar("T")

_MISSING: Any = object()


@config_record
class Problem:
    file: str
    line: Optional[int]
    key: str
    message: str

    def __str__(self) -> str:
        # One problem, one line: a newline or control character in a key or value is printed escaped.
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return printable(text)


def printable(text: str, limit: int = 0) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\u2028``) and, with
    ``limit``, cut to that many characters with an ellipsis."""
    if limit and len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(Exception):
    """Every problem found in a configuration; ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


class Secret:
    """A secret value that never shows itself in reprs, logs or status output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('(redacted)')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class DeferredSecret(Secret):
    """A secret this process cannot read but the service will (``LoadCredential=``, an environment
    variable set only for the service): ``source`` says where it comes from. Empty when revealed;
    only commands that never send (validate, status, silence, ack, check) get one."""

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        super().__init__("")
        self.source = source

    def __repr__(self) -> str:
        return f"DeferredSecret({self.source!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return True  # configured, only not readable here


@config_record
class Deferred:
    """A secret left for the service to resolve: where it is configured and where it comes from."""

    file: str
    line: Optional[int]
    key: str
    source: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return DEFERRED_TEXT.format(where=where, key=self.key, source=self.source)


DEFERRED_TEXT = "{where}: {key}: resolved at service start from {source}"


def is_deferred(secret: Optional[Secret]) -> bool:
    return isinstance(secret, DeferredSecret)


def redact(text: str, keep: int = 4) -> str:
    """``f0ca…(redacted)``: enough to tell two tokens apart, not enough to use one."""
    return f"{text[:keep]}…(redacted)" if text else ""


# ---------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


MAX_DURATION = 3650 * 86400.0  # ten years: longer is a typo (or an attack), and dates past it overflow time.localtime


def parse_duration(text: str) -> float:
    """``"30s"`` -> 30.0; accepts ms, s, m, h, d, compound ``"1h30m"`` and ``"0"``, at most ten years.

    Raises ValueError."""
    text = text.strip()
    if text == "0":
        return 0.0
    if len(text) > 64:  # also keeps float() finite below
        raise ValueError(text[:64])
    total = 0.0
    pos = 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text):
        if match.start() != pos:
            raise ValueError(text)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(text)
    if not total <= MAX_DURATION:
        raise DurationTooLong(text)
    return total


class DurationTooLong(ValueError):
    """A well-formed duration past :data:`MAX_DURATION`."""


def format_duration(seconds: float) -> str:
    """A short human form: ``90`` -> ``1m30s`` (monagent.formatting, in English)."""
    from monagent.formatting import Formatter

    return Formatter("en").duration(seconds)


# ---------------------------------------------------------------- line locator

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


def _split_dotted(text: str) -> List[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def locate_keys(source: str) -> Dict[Tuple[str, ...], int]:
    """Map each dotted key path to its 1-based line by scanning the TOML text.

    TOML parsers give positions only for syntax errors; this scan is good enough
    for error messages: table headers, ``key = value`` lines, dotted keys and
    keys inside one-line inline tables. Array-of-tables entries get an index.
    """
    lines: Dict[Tuple[str, ...], int] = {}
    table: Tuple[str, ...] = ()
    array_counts: Dict[Tuple[str, ...], int] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and not _KEYLINE.match(line):
            path = tuple(_split_dotted(header.group(2)))
            if header.group(1) == "[[":
                index = array_counts.get(path, 0)
                array_counts[path] = index + 1
                path = path + (str(index),)
            table = path
            for end in range(1, len(table) + 1):
                lines.setdefault(table[:end], number)
            continue
        key = _KEYLINE.match(line)
        if not key:
            continue
        path = table + tuple(_split_dotted(key.group(1)))
        lines.setdefault(path, number)
        rest = line[key.end() :]
        if "{" in rest:
            for inner in _INLINE_KEY.finditer(rest):
                lines.setdefault(path + (inner.group(1).strip('"'),), number)
    return lines


# ---------------------------------------------------------------- the reader


class Document:
    """One parsed file: its name, key lines, environment and the problems found so far."""

    def __init__(self, file: str, source: str, environ: Optional[Mapping[str, str]] = None) -> None:
        self.file = file
        self.source = source
        self.lines = locate_keys(source)
        self.environ = dict(os.environ if environ is None else environ)
        self.problems: List[Problem] = []
        # Set by the loader for commands that run outside the service (see monagent.credentials):
        # ``resolver`` finds a credential or variable where the installed unit gets it;
        # ``defer_secrets`` notes a secret nobody here can read instead of calling it a problem.
        self.resolver: Any = None
        self.defer_secrets = False
        self.deferred: List[Deferred] = []
        self.base_dir = Path(file).resolve().parent

    def line_of(self, path: Sequence[str]) -> Optional[int]:
        path = tuple(path)
        known = path
        while known and known not in self.lines:
            known = known[:-1]
        line = self.lines[known] if known else None
        # Keys the scan cannot follow (escapes in a quoted key): look for their spelling further down.
        for name in path[len(known) :]:
            found = self._search(name, line or 1)
            if found is None:
                break
            line = found
        return line

    def _search(self, name: str, start: int) -> Optional[int]:
        """The first line from ``start`` on that spells ``name``, as written or as a TOML escape writes it."""
        if not name or name.isdigit():
            return None
        offset = 0
        for _ in range(start - 1):
            offset = self.source.find("\n", offset) + 1
            if offset == 0:
                return None
        for spelling in dict.fromkeys((name, printable(name), name.encode("unicode_escape").decode("ascii"))):
            at = self.source.find(spelling, offset)
            if at >= 0:
                return self.source.count("\n", 0, at) + 1
        return None

    def problem(self, path: Sequence[str], message: str) -> None:
        self.problems.append(Problem(self.file, self.line_of(path), ".".join(path), message))


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{printable(value, 200)}"'
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _kind_of(value: Any) -> str:
    """What a value is, without the value (for secrets)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return _describe(value) if isinstance(value, (dict, list)) else "a date or time"


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Section:
    """One table of the document, read key by key."""

    def __init__(self, doc: Document, path: Sequence[str], data: Mapping[str, Any]) -> None:
        self.doc = doc
        self.path = tuple(path)
        self.data = dict(data)
        self._used: Set[str] = set()
        self._secret_key: Optional[str] = None  # the secret being read: an unset ${VAR} in it may be deferred
        self._unresolved: List[str] = []

    # -- plumbing
    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> List[str]:
        return list(self.data)

    def error(self, key: Optional[str], message: str) -> None:
        self.doc.problem(self.path + ((key,) if key else ()), message)

    def _take(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.error(key, "is required")
            return _MISSING
        return self.data[key]

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as parsed, for callers that validate it themselves (check options)."""
        value = self._take(key, default)
        return default if value is _MISSING else value

    def mark_used(self, *keys: str) -> None:
        self._used.update(keys)

    def finish(self, extra_known: Sequence[str] = ()) -> None:
        """Report every key that no getter asked for, with a suggestion when one is close."""
        known = sorted(self._used | set(extra_known))
        for key in self.data:
            if key in self._used or key in extra_known:
                continue
            import difflib  # only for an unknown key

            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            accepted = f"; accepted keys: {', '.join(known)}" if known and not close else ""
            self.error(key, f"unknown key{hint}{accepted}")

    # -- scalars
    def string(self, key: str, default: Any = _MISSING, *, choices: Sequence[str] = ()) -> Any:
        value = self._take(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_describe(value)}")
            return None if default is _MISSING else default
        value = self._expand(key, value)
        if choices and value not in choices:
            self.error(key, f"must be one of {', '.join(choices)}; got {_describe(value)}")
            return None if default is _MISSING else default
        return value

    def _expand(self, key: str, value: str) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in self.doc.environ:
                return self.doc.environ[name]
            found = self.doc.resolver.variable(name) if self.doc.resolver is not None else None
            if found is not None:
                return str(found[0])
            if self._secret_key is not None and self.doc.defer_secrets:
                self._unresolved.append(self._variable_source(name))
                return ""
            self.error(key, f"environment variable {name} is not set{self._variable_hint(name)}")
            return ""

        return _ENV_REF.sub(sub, value)

    def _variable_source(self, name: str) -> str:
        where = self.doc.resolver.variable_source(name) if self.doc.resolver is not None else None
        return f"${name} ({where})" if where else f"${name} (set for the service only)"

    def _variable_hint(self, name: str) -> str:
        """What to do, for a command run from a shell (one given a resolver); the service has none."""
        if self._secret_key is None or self.doc.resolver is None:
            return ""
        where = self.doc.resolver.variable_source(name)
        if where:
            return f" here, and {where} cannot be read by this user; run as root, or export {name}=..."
        return f"; export {name}=... (the value the service gets) and run this again"

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
        integer: bool = False,
    ) -> Any:
        value = self._take(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        kind = "an integer" if integer else "a number"
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int))
        out_of_range = not bad and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum))
        if bad or out_of_range:
            if minimum is not None and maximum is not None:
                self.error(key, f"must be {kind} from {_fmt(minimum)} to {_fmt(maximum)}, got {_describe(value)}")
            elif minimum is not None:
                self.error(key, f"must be {kind} of at least {_fmt(minimum)}, got {_describe(value)}")
            elif maximum is not None:
                self.error(key, f"must be {kind} of at most {_fmt(maximum)}, got {_describe(value)}")
            else:
                self.error(key, f"must be {kind}, got {_describe(value)}")
            return None if default is _MISSING else default
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: Optional[int] = None, maximum: Optional[int] = None) -> Any:
        return self.number(key, default, minimum=minimum, maximum=maximum, integer=True)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._take(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {_describe(value)}")
            return None if default is _MISSING else default
        return value

    def duration(self, key: str, default: Any = _MISSING, *, minimum: float = 0.0) -> Any:
        """A duration string (``"30s"``, ``"5m"``, ``"1h30m"``, ``"0"``) in seconds."""
        value = self._take(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(value, str) and not (isinstance(value, int) and not isinstance(value, bool) and value == 0):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            hint = f' (a number has no unit: write "{_fmt(value)}s" for seconds)' if number else ""
            self.error(key, f'must be a duration such as "30s", "5m" or "4h", got {_describe(value)}{hint}')
            return None if default is _MISSING else default
        try:
            seconds = parse_duration(str(value))
        except DurationTooLong:
            self.error(key, f"must be at most 3650d (ten years), got {_describe(value)}")
            return None if default is _MISSING else default
        except ValueError:
            self.error(key, f'must be a duration such as "30s", "5m" or "4h" (units ms, s, m, h, d), got {_describe(value)}')
            return None if default is _MISSING else default
        if seconds < minimum:
            self.error(key, f"must be at least {format_duration(minimum)}, got {_describe(value)}")
            return None if default is _MISSING else default
        return seconds

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        """An array of strings (a single string is not accepted: say ``["x"]``)."""
        value = self._take(key, default)
        if value is _MISSING:
            return () if default is _MISSING else default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, f"must be an array of strings, got {_describe(value)}")
            return () if default is _MISSING else default
        return tuple(self._expand(key, v) for v in value)

    def path_value(self, key: str, default: Any = _MISSING) -> Any:
        """A file system path; relative paths are taken relative to the config file."""
        value = self.string(key, default)
        if value is None or isinstance(value, Path):
            return value
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.doc.base_dir / path

    def secret(self, key: str, required: bool = False) -> Optional[Secret]:
        """A secret from ``key`` (inline or ``${ENV}``), ``key_file`` (a path) or
        ``key_credential`` (a name under ``$CREDENTIALS_DIRECTORY``, systemd ``LoadCredential=``)."""
        file_key, cred_key = f"{key}_file", f"{key}_credential"
        given = [k for k in (key, file_key, cred_key) if k in self.data]
        self._used.update((key, file_key, cred_key))
        if len(given) > 1:
            self.error(given[1], f"give only one of {key}, {file_key}, {cred_key}")
            return None
        if not given:
            if required:
                self.error(key, f"is required (or {file_key}, or {cred_key})")
            return None
        which = given[0]
        if which == key and not isinstance(self.data[key], str):  # never echo a secret, even a mistyped one
            self.error(key, f"must be a string, got {_kind_of(self.data[key])} (its value is not shown)")
            return None
        if which == key:
            self._secret_key, self._unresolved = key, []
            try:
                value = self.string(key)
            finally:
                self._secret_key = None
            if self._unresolved:
                return self._defer(key, " and ".join(self._unresolved))
            return Secret(value) if value else None
        if which == file_key:
            path = self.path_value(file_key)
        else:
            name = str(self.string(cred_key))
            creds = self.doc.environ.get("CREDENTIALS_DIRECTORY")
            if not creds:
                return self._service_credential(cred_key, name)
            path = Path(creds) / name
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except PermissionError as exc:
            if self.doc.defer_secrets:
                return self._defer(which, f"{path} (not readable by this user)")
            self.error(which, f"cannot read {path}: {exc.strerror or exc}")
            return None
        except OSError as exc:
            self.error(which, f"cannot read {path}: {exc.strerror or exc}")
            return None
        if not text:
            self.error(which, f"{path} is empty")
            return None
        return Secret(text)

    def _defer(self, key: str, source: str) -> Secret:
        path = self.path + (key,)
        self.doc.deferred.append(Deferred(self.doc.file, self.doc.line_of(path), ".".join(path), source))
        return DeferredSecret(source)

    def _service_credential(self, cred_key: str, name: str) -> Optional[Secret]:
        """A credential outside the service: read where the installed unit's ``LoadCredential=`` (or
        the credstore) has it when this user can; else deferred, or a problem saying what to do."""
        resolver = self.doc.resolver
        found = resolver.credential(name) if resolver is not None else None
        if found is not None:
            text, where = found
            if not text.strip():
                self.error(cred_key, f"{where} is empty")
                return None
            return Secret(text.strip())
        source = resolver.credential_source(name) if resolver is not None else None
        if self.doc.defer_secrets:
            return self._defer(cred_key, source or f"LoadCredential={name}:... in the unit")
        if source:
            self.error(cred_key, f"credential {name} comes from {source}, which this user cannot read; run this as root")
        else:
            self.error(
                cred_key,
                f"CREDENTIALS_DIRECTORY is not set and no installed unit loads a credential {name} "
                f"(LoadCredential={name}:/path in the unit, or /etc/credstore/{name})",
            )
        return None

    # -- nested
    def table(self, key: str, required: bool = False) -> Section:
        value = self._take(key, _MISSING if required else None)
        if value is _MISSING or value is None:
            return Section(self.doc, self.path + (key,), {})
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_describe(value)}")
            return Section(self.doc, self.path + (key,), {})
        return Section(self.doc, self.path + (key,), value)

    def tables(self) -> Iterator[Tuple[str, Section]]:
        """Every sub-table of this section, as ``(name, Section)``; other values are errors."""
        for name, value in self.data.items():
            self._used.add(name)
            if isinstance(value, dict):
                yield name, Section(self.doc, self.path + (name,), value)
            else:
                self.error(name, f"must be a table, got {_describe(value)}")

    def array_of_tables(self, key: str) -> List[Section]:
        value = self._take(key, None)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(key, f"must be an array of tables ([[{'.'.join(self.path + (key,))}]]), got {_describe(value)}")
            return []
        return [Section(self.doc, self.path + (key, str(i)), v) for i, v in enumerate(value)]


def _fmt(number: float) -> str:
    if isinstance(number, int) and not -(2**63) <= number < 2**63:
        return _describe(number)
    return str(int(number)) if float(number).is_integer() else str(number)


# ---------------------------------------------------------------- limits of a hostile file

MAX_DEPTH = 16  # tables and arrays nested deeper than any monagent key needs
MAX_INT = 2**63 - 1  # TOML's own bound for integers, which Python's parser does not enforce
MAX_STRING = 65536


def nesting_problem(file: str, source: str) -> Optional[Problem]:
    """The first line whose arrays and inline tables nest deeper than :data:`MAX_DEPTH`, found
    before the TOML parser, which would recurse to a RecursionError on a deep enough one."""
    depth = 0
    quote = ""
    line = 1
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            if len(quote) == 1:
                quote = ""  # a one-line string ends at the line's end; the parser reports it
        elif quote:
            if c == "\\" and quote[0] == '"':
                i += 1
            elif source.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = c * 3 if source.startswith(c * 3, i) else c
            i += len(quote) - 1
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return Problem(file, line, "", f"arrays and tables nest more than {MAX_DEPTH} deep")
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def limit_problems(doc: Document, data: Mapping[str, Any]) -> List[Problem]:
    """Integers past 64 bits, strings past 64 KiB and nesting past :data:`MAX_DEPTH`, each with its key."""
    problems: List[Problem] = []
    stack: List[Tuple[Tuple[str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            problems.append(Problem(doc.file, doc.line_of(path), ".".join(path[:MAX_DEPTH]), "nested too deep"))
        elif isinstance(value, dict):
            stack.extend((path + (str(k),), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (str(i),), v) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            problems.append(Problem(doc.file, doc.line_of(path), ".".join(path), f"{_describe(value)} is too large"))
        elif isinstance(value, str) and len(value) > MAX_STRING:
            problems.append(Problem(doc.file, doc.line_of(path), ".".join(path), f"a string longer than {MAX_STRING}"))
    return problems


def url_problem(url: str) -> str:
    """Why ``url`` is no usable http(s) URL, as "must be ... (reason)"; "" when it is one.

    Never quotes the URL: a webhook URL may hold a secret."""
    from urllib.parse import urlsplit

    what = "must be an http:// or https:// URL"
    if not url.isprintable() or " " in url:
        return f"{what} (this one has spaces or control characters)"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is no number or out of range
        return f"{what} (this one cannot be parsed: {exc})"
    if parts.scheme not in ("http", "https") or not host:
        return what
    if port == 0:
        return f"{what} (port 0 is no port)"
    return ""
