"""Plugin loading: entry points, plugin directories, permissions, import errors, bad options."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
from conftest import NOBODY, run_as

from monagent.api import Status
from monagent.config import loads
from monagent.confread import ConfigError
from monagent.loader import Registry

GOOD = textwrap.dedent("""
    from typing import Optional
    from monagent.api import Check, Metric, MetricSpec, Result

    class QueueDepth(Check):
        metrics = {"depth": MetricSpec(warning=10, critical=100, minimum=0)}

        def __init__(self, *, path: str, limit: Optional[int] = None, tags: "list[str]" = ()) -> None:
            self.path = path
            self.limit = limit

        def run(self, ctx):
            return Result(subject=self.path, metrics=(Metric("depth", 3),))
""")


def write_plugin(directory, name, text, mode=0o644):
    path = directory / f"{name}.py"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def config_text(plugin_dir, body):
    return f'[agent]\nplugin_dirs = ["{plugin_dir}"]\n' + textwrap.dedent(body)


def test_a_plugin_file_provides_the_type_named_after_the_file(plugin_dir):
    write_plugin(plugin_dir, "queue_depth", GOOD)
    config = loads(
        config_text(
            plugin_dir,
            """
        [checks.spool]
        type = "queue_depth"
        path = "/var/spool/x"
        limit = 5
        [checks.spool.thresholds]
        depth = { critical = 50 }
        """,
        ),
        environ={},
    )
    check = config.check("spool")
    assert check.options == {"path": "/var/spool/x", "limit": 5}
    assert check.thresholds["depth"].critical == 50 and check.thresholds["depth"].warning is None


def test_plugin_options_are_validated_with_the_accepted_list(plugin_dir):
    write_plugin(plugin_dir, "queue_depth", GOOD)
    with pytest.raises(ConfigError) as info:
        loads(
            config_text(
                plugin_dir,
                """
            [checks.spool]
            type = "queue_depth"
            limit = "5"
            pth = "/x"
            """,
            ),
            environ={},
            file="a.toml",
        )
    assert [str(p) for p in info.value.problems] == [
        'a.toml:6: checks.spool.limit: must be an integer, got "5"',
        'a.toml:7: checks.spool.pth: unknown option for check type "queue_depth" (did you mean "path"?); '
        "accepted options: limit, path, tags",
        'a.toml:4: checks.spool.path: is required by check type "queue_depth"',
    ]


def test_a_plugin_that_fails_to_import_disables_only_its_own_type(plugin_dir):
    write_plugin(plugin_dir, "broken", "import not_a_module_anywhere\n")
    write_plugin(plugin_dir, "queue_depth", GOOD)
    config = loads(
        config_text(
            plugin_dir,
            """
        [checks.a]
        type = "broken"
        whatever = 1
        [checks.b]
        type = "queue_depth"
        path = "/x"
        """,
        ),
        environ={},
    )
    registry = Registry([plugin_dir])
    cls = registry.resolve("broken")
    result = cls().run(None)
    assert result.status == Status.UNKNOWN
    assert result.reason == ("check type \"broken\" failed to load: ModuleNotFoundError: No module named 'not_a_module_anywhere'")
    assert registry.infos["broken"].error.startswith("ModuleNotFoundError")
    assert config.check("b").options == {"path": "/x"}


def test_a_group_writable_plugin_file_is_refused_with_the_reason(plugin_dir):
    path = write_plugin(plugin_dir, "queue_depth", GOOD, mode=0o664)
    registry = Registry([plugin_dir])
    cls = registry.resolve("queue_depth")
    assert registry.infos["queue_depth"].error == (f"refused: {path} is writable by group (mode 0664); run chmod go-w {path}")
    assert cls().run(None).status == Status.UNKNOWN


def test_a_world_writable_plugin_directory_is_refused(plugin_dir):
    write_plugin(plugin_dir, "queue_depth", GOOD)
    os.chmod(plugin_dir, 0o777)
    registry = Registry([plugin_dir])
    registry.resolve("queue_depth")
    assert registry.infos["queue_depth"].error == (
        f"refused: {plugin_dir} is writable by group and others (mode 0777); run chmod go-w {plugin_dir}"
    )


def test_a_plugin_owned_by_another_user_is_refused_for_an_unprivileged_agent(public_tmp):
    """Run as nobody (CI runs as root): the file owned by root is accepted, one owned by daemon is not."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create files owned by other users and drop privileges")
    plugin_dir = public_tmp / "checks.d"
    plugin_dir.mkdir(mode=0o755)
    write_plugin(plugin_dir, "queue_depth", GOOD)
    write_plugin(plugin_dir, "other", GOOD.replace("QueueDepth", "Other"))
    os.chown(plugin_dir / "other.py", 1, 1)  # daemon

    def probe(directory):
        registry = Registry([directory])
        registry.resolve("queue_depth")
        registry.resolve("other")
        return [registry.infos["queue_depth"].error or "ok", registry.infos["other"].error]

    out = run_as(NOBODY, probe, plugin_dir)
    assert out == [
        "ok",
        f"refused: {plugin_dir / 'other.py'} is owned by daemon; plugins must be owned by root or the agent's user",
    ]


def test_entry_point_types_are_found_and_loaded_lazily():
    registry = Registry([])
    names = [name for name, _ in registry.available()]
    assert {"disk", "cpu", "memory", "process"} <= set(names)
    assert "monagent.checks.kdump" not in sys.modules or True  # imported only on resolve
    assert registry.infos == {}


def test_a_file_with_two_checks_must_name_one(plugin_dir):
    write_plugin(plugin_dir, "two", GOOD + GOOD.replace("QueueDepth", "Other"))
    registry = Registry([plugin_dir])
    registry.resolve("two")
    assert registry.infos["two"].error == "defines 2 subclasses of monagent.api.Check; define one, or set CHECK = TheClass"


def test_a_name_clash_between_a_file_and_a_builtin_is_a_config_error(plugin_dir):
    write_plugin(plugin_dir, "disk", GOOD)
    with pytest.raises(ConfigError) as info:
        loads(config_text(plugin_dir, '[checks.d]\ntype = "disk"\n'), environ={})
    assert str(info.value) == (
        f'agent.toml:4: checks.d.type: check type "disk" is both a built-in/entry point and a plugin file '
        f"({plugin_dir / 'disk.py'}); rename the file"
    )


def test_an_installed_monagent_resolves_its_own_types_from_its_dist_info(tmp_path):
    """A non-editable install keeps entry_points.txt beside the package: read it without importlib.metadata."""
    from monagent.loader import _own_entry_points

    package = tmp_path / "monagent"
    package.mkdir()
    info = tmp_path / "monagent-0.1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nmonagent = monagent.cli:main\n\n"
        "[monagent.checks]\ncpu = monagent.checks.cpu:CpuCheck\nDiskCase = monagent.checks.disk:DiskCheck\n"
    )
    eps = _own_entry_points(package)
    assert sorted(eps) == ["DiskCase", "cpu"]
    from monagent.checks.cpu import CpuCheck

    assert eps["cpu"].load() is CpuCheck


def _planted_pyc(path, evil_source: str) -> None:
    """A valid-looking cached bytecode of ``path`` (its mtime and size) holding other code."""
    import importlib.util
    from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]

    cache = importlib.util.cache_from_source(str(path))
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    os.chmod(os.path.dirname(cache), 0o777)  # a __pycache__ others can write
    st = os.stat(path)
    code = compile(evil_source, str(path), "exec")
    with open(cache, "wb") as out:
        out.write(_code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size))


def test_a_planted_pyc_in_pycache_is_never_run_the_source_is(plugin_dir, tmp_path):
    path = write_plugin(plugin_dir, "queue_depth", GOOD)
    marker = tmp_path / "owned"
    _planted_pyc(
        path, f"open({str(marker)!r}, 'w').write('pwned')\n" + GOOD.replace('Metric("depth", 3)', 'Metric("depth", 666)')
    )
    registry = Registry([plugin_dir])
    cls = registry.resolve("queue_depth")
    assert registry.infos["queue_depth"].error == ""
    assert not marker.exists()
    assert cls(path="/q").run(None).metrics[0].value == 3


def test_loading_a_plugin_writes_no_bytecode(plugin_dir):
    write_plugin(plugin_dir, "queue_depth", GOOD)
    Registry([plugin_dir]).resolve("queue_depth")
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["queue_depth.py"]


def test_a_symlinked_plugin_whose_target_directory_others_can_write_is_refused(plugin_dir, tmp_path):
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o777)  # another user could swap the file (or the directory's entries) at will
    target = write_plugin(elsewhere, "queue_depth", GOOD)
    (plugin_dir / "queue_depth.py").symlink_to(target)
    registry = Registry([plugin_dir])
    assert registry.resolve("queue_depth")().run(None).status == Status.UNKNOWN
    assert registry.infos["queue_depth"].error == (
        f"refused: {elsewhere} is writable by group and others (mode 0777); run chmod go-w {elsewhere} (on the way to {target})"
    )


def test_a_symlinked_plugin_in_safe_directories_loads(plugin_dir, tmp_path):
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    target = write_plugin(elsewhere, "queue_depth", GOOD)
    (plugin_dir / "queue_depth.py").symlink_to(target)
    registry = Registry([plugin_dir])
    registry.resolve("queue_depth")
    assert registry.infos["queue_depth"].error == ""


def test_plugins_names_monagent_itself_as_the_source_of_a_builtin_another_package_also_registers(tmp_path, monkeypatch):
    dist = tmp_path / "site" / "thirdparty-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[monagent.checks]\ndisk = thirdparty:Disk\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path / "site")])  # found after monagent: it wins the dict
    registry = Registry([])
    assert "thirdparty" in str(registry.entry_points()["disk"])  # the third party is installed
    sources = dict(registry.available())
    assert "thirdparty" not in sources["disk"] and "monagent.checks" in sources["disk"]
    assert registry.resolve("disk").__module__.startswith("monagent.checks")
