"""The import layering of monagent/ and checks/ (docs/architecture.md).

An AST walk of every module, counting every import: top-level, inside functions (lazy) and
under ``if TYPE_CHECKING:``, because each is a dependency a maintainer has to understand.
Each module has a layer; an import may point to its own layer or one below, never up, and
the graph has no cycle. A new module must be given a layer here, so the drawing stays true.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Within a layer, imports may go either way (but never round in a cycle).
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "monagent",
            "monagent.__main__",  # only the entry point; checked apart below
            "monagent.catalogue",
            "monagent.catalogue.en",
            "monagent.catalogue.zh",
            "monagent.formatting",
            "monagent.records",
            "monagent.lazylog",
            "monagent.confread",
            "monagent.permissions",
            "monagent.statelock",
            "monagent.sdnotify",
            "monagent.warden",
            "monagent.logsetup",
            "monagent.control",
            "monagent.credentials",
            "monagent.startup",
            "monagent.lint",
        ),
    ),
    ("plugin api", ("monagent.api", "monagent.nagios", "monagent.procfs", "monagent.workers", "monagent.options")),
    ("shared types", ("monagent.checkrun", "monagent.events", "monagent.oneshot", "monagent.wording")),
    # The store keeps rows (text it never reads) and sits below everything that gives the text a meaning:
    # the event format is the alerting layer's (alerting.persist writes it, alerting.outbox reads it).
    ("store", ("monagent.store",)),
    (
        "alerting rules",
        (
            "monagent.alerting",
            "monagent.alerting.config",
            "monagent.alerting.matchers",
            "monagent.alerting.route",
            "monagent.alerting.flap",
            "monagent.alerting.machine",
            "monagent.alerting.policy",
            "monagent.alerting.samples",
            "monagent.alerting.suppress",
            "monagent.alerting.messages",
            "monagent.alerting.occurrences",
            "monagent.alerting.codec",
            "monagent.alerting.silence_ack",
            "monagent.bootend",
            "monagent.reboot_config",
        ),
    ),
    ("notify", ("monagent.notify", "monagent.metrics_config", "monagent.metrics")),  # and monagent.notify.*
    ("config", ("monagent.config", "monagent.loader", "monagent.context", "monagent.scheduler")),
    (
        "alert engine",
        (
            "monagent.alerting.persist",
            "monagent.alerting.outbox",
            "monagent.alerting.pipeline",
            "monagent.alerting.status",
            "monagent.alerting.control_handler",
        ),
    ),
    (
        "agent",
        (
            "monagent.agent",
            "monagent.metrics_state",
            "monagent.firstcycle",
            "monagent.install",
            "monagent.testing",
            "monagent.bootinquiry",
        ),
    ),
    ("command line", ("monagent.cli",)),  # and monagent.commands.*
)
PREFIX_LAYERS = {"monagent.notify.": "notify", "monagent.commands": "command line"}
PUBLIC_FOR_CHECKS = ("monagent.api", "monagent.nagios")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> Iterator[Tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield module_name(path), path


def imports(path: Path) -> List[Tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                package = module_name(path).split(".")
                if path.name != "__init__.py":
                    package.pop()
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, node.lineno))
            # "from monagent import events" imports the module monagent.events
            found.extend((f"{name}.{alias.name}", node.lineno) for alias in node.names)
    return found


def layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if module in members:
            return rank
    for prefix, layer in PREFIX_LAYERS.items():
        if module.startswith(prefix):
            return [name for name, _ in LAYERS].index(layer)
    raise KeyError(module)


def known_modules() -> Set[str]:
    return {name for name, _ in modules("monagent")}


def resolve(name: str, known: Set[str]) -> str:
    """The monagent module an imported name refers to ("monagent.api.Status" -> "monagent.api")."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def graph() -> Dict[str, Dict[str, int]]:
    known = known_modules()
    edges: Dict[str, Dict[str, int]] = {}
    for name, path in modules("monagent"):
        targets: Dict[str, int] = {}
        for imported, line in imports(path):
            if imported.split(".")[0] != "monagent":
                continue
            target = resolve(imported, known)
            if target and target != name:
                targets.setdefault(target, line)
        edges[name] = targets
    return edges


def test_every_module_has_a_layer():
    missing = []
    for name in known_modules():
        try:
            layer_of(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"give these modules a layer in tests/test_layers.py: {sorted(missing)}"


def upward(edges: Dict[str, Dict[str, int]]) -> List[str]:
    wrong = []
    for name, targets in edges.items():
        if name == "monagent.__main__":
            continue
        for target, line in targets.items():
            if layer_of(target) > layer_of(name):
                here, there = LAYERS[layer_of(name)][0], LAYERS[layer_of(target)][0]
                wrong.append(f"{name}:{line} imports {target} ({here} -> {there})")
    return sorted(wrong)


def test_no_import_points_up_a_layer():
    wrong = upward(graph())
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_an_import_up_a_layer_is_reported():
    edges = {"monagent.store": {"monagent.alerting.pipeline": 12, "monagent.events": 3}, "monagent.agent": {"monagent.store": 5}}
    assert upward(edges) == ["monagent.store:12 imports monagent.alerting.pipeline (store -> alert engine)"]


def test_the_store_may_not_know_the_event_format_of_the_alerting_layer(tmp_path):
    """Not even through a lazy import: the store returns rows, the alerting layer decodes them."""
    probe = tmp_path / "store.py"
    probe.write_text("def pending():\n    from monagent.alerting.codec import event_from_json\n", encoding="utf-8")
    known = {"monagent.store", "monagent.alerting", "monagent.alerting.codec"}  # not the tree: CI's wheel run has none
    edges = {"monagent.store": {resolve(n, known): line for n, line in imports(probe)}}
    assert upward(edges) == ["monagent.store:2 imports monagent.alerting.codec (store -> alerting rules)"]


def cycles(edges: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    # the package __init__ (version only) is imported by everything and imports nothing of its own
    edges = {name: {t: line for t, line in targets.items() if t != "monagent"} for name, targets in graph().items()}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def stdlib(name: str) -> bool:
    top = name.split(".", maxsplit=1)[0]
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return top in names or top == "__future__"
    import importlib.util
    import sysconfig

    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return spec is not None
    return spec.origin.startswith(sysconfig.get_paths()["stdlib"]) and "site-packages" not in spec.origin


@pytest.mark.parametrize("name,path", list(modules("checks")), ids=lambda v: v if isinstance(v, str) else "")
def test_a_built_in_check_imports_only_the_public_api_and_the_standard_library(name, path):
    own = {n.split(".")[-1] for n, _ in modules("checks")}
    wrong = []
    for imported, line in imports(path):
        if imported.startswith(("monagent.checks.", "checks.")) and imported.split(".")[-1] in own | {"*"}:
            continue  # a sibling built-in check module (installed as monagent.checks)
        if imported.startswith(("monagent.checks.", "checks.")):
            sibling = imported.split(".")[2] if imported.startswith("monagent.") else imported.split(".")[1]
            if sibling in own:
                continue
        if imported.startswith(PUBLIC_FOR_CHECKS) or imported in ("monagent", "monagent.checks", "checks"):
            continue
        if imported.split(".")[0] not in ("monagent", "checks") and stdlib(imported):
            continue
        wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_lazy_and_type_checking_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from monagent.config import Config\n"
        "def f():\n    import requests\n    from monagent.api import Status\n",
        encoding="utf-8",
    )
    found = [n for n, _ in imports(probe) if not (n.startswith(PUBLIC_FOR_CHECKS) or stdlib(n))]
    assert found == ["monagent.config", "monagent.config.Config", "requests"]
