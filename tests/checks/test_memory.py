"""The memory check reads meminfo under the context's procfs root."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from monagent.checks.memory import MemoryCheck

from monagent.api import CheckError, Formatter, Result
from monagent.context import SystemFacts

DATA = Path(__file__).resolve().parent.parent / "data" / "proc"


def values(result: Result) -> dict:
    return {m.name: m.value for m in result.metrics}


def meminfo(tmp_path: Path, text: str) -> SimpleNamespace:
    (tmp_path / "meminfo").write_text(text)
    return SimpleNamespace(proc_root=tmp_path)


def test_available_memory_and_swap_use_come_from_meminfo():
    result = MemoryCheck().run(SystemFacts("web-01", proc_root=DATA).cycle(1000.0, 50.0))
    assert values(result) == {"available_percent": 8.0, "available_bytes": 1309120 * 1024, "swap_used_percent": 25.0}
    assert Formatter("en").text(result.reason) == "8% available (1.25 GiB of 15.6 GiB); swap 25% used"
    assert Formatter("zh").text(result.reason) == "可用内存 8%（15.6 GiB 中可用 1.25 GiB）；交换分区已用 25%"
    assert result.facts == {"total": 16_756_736_000, "swap_total": 4_294_963_200}


def test_a_machine_without_swap_has_no_swap_value(tmp_path):
    ctx = meminfo(tmp_path, "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    result = MemoryCheck().run(ctx)
    assert values(result)["swap_used_percent"] is None and values(result)["available_percent"] == 50.0
    assert Formatter("en").text(result.reason) == "50% available (512 MiB of 1 GiB); no swap"
    assert Formatter("zh").text(result.reason) == "可用内存 50%（1 GiB 中可用 512 MiB）；无交换分区"
    assert "swap_total" not in result.facts


def test_an_old_kernel_without_memavailable_uses_free_buffers_and_cached(tmp_path):
    ctx = meminfo(tmp_path, "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 150 kB\n")
    assert values(MemoryCheck().run(ctx))["available_percent"] == 30.0


def test_an_unreadable_meminfo_is_a_check_error(tmp_path):
    with pytest.raises(CheckError, match=f"^cannot read {tmp_path}/meminfo: No such file or directory$"):
        MemoryCheck().run(SimpleNamespace(proc_root=tmp_path))
    with pytest.raises(CheckError, match=r"has no MemTotal line$"):
        MemoryCheck().run(meminfo(tmp_path, "garbage\n"))


def test_the_live_system_has_memory():
    live = values(MemoryCheck().run(SystemFacts("here").cycle(time.time(), time.monotonic())))
    assert 0 < live["available_percent"] <= 100
