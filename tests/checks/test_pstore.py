"""pstore records as the kernel and systemd-pstore lay them out, read from real files."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import List

from kdump_helpers import NULL_DEREF, OOM, SYSRQ
from monagent.checks.kdump_reason import parse_dmesg
from monagent.checks.pstore import read_records

EXPECTED = parse_dmesg(NULL_DEREF)  # the kdump watcher's reading of the same log


def kernel_chunks(log: str, reason: str, size: int) -> List[str]:
    """What pstore writes: the log's tail in chunks of ``size`` bytes, newest first, each with
    its ``Reason#N PartM`` header and the syslog level prefix on every line."""
    lines = [f"<0>{line}" for line in log.splitlines()]
    chunks: List[str] = []
    current: List[str] = []
    for line in reversed(lines):
        if current and sum(len(x) + 1 for x in current) + len(line) > size:
            chunks.append("\n".join(reversed(current)) + "\n")
            current = []
        current.append(line)
    if current:
        chunks.append("\n".join(reversed(current)) + "\n")
    return [f"{reason}#1 Part{i + 1}\n{chunk}" for i, chunk in enumerate(chunks)]


def efi_name(part: int, stamp: int = 1769000000) -> str:
    return f"dmesg-efi-{(stamp * 100 + part) * 1000 + 1}"


def test_a_multi_part_efi_record_is_joined_oldest_part_first(tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    chunks = kernel_chunks(SYSRQ, "Panic", 700)
    assert len(chunks) >= 3
    for number, chunk in enumerate(chunks, start=1):
        (live / efi_name(number)).write_text(chunk)
    records, problems = read_records([str(live)])
    assert problems == []
    assert len(records) == 1
    record = records[0]
    assert record.backend == "efi" and record.reason == "Panic" and len(record.paths) == len(chunks)
    assert record.report.headline == "Kernel panic - not syncing: sysrq triggered crash"
    assert record.report.comm == "bash" and record.report.kernel == "5.4.0-0.rc6.git0.1.fc32.x86_64"
    assert record.text.index("sysrq: Trigger a crash") < record.text.index("RIP: 0033")


def test_erst_and_ramoops_records_are_read_with_their_reason(tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    (live / "dmesg-erst-6774123456789012481").write_text(kernel_chunks(OOM, "Panic", 100000)[0])
    chunks = kernel_chunks(NULL_DEREF, "Oops", 1500)
    assert len(chunks) > 1
    for slot, chunk in enumerate(chunks):
        (live / f"dmesg-ramoops-{slot}").write_text(chunk)
    records, _ = read_records([str(live)])
    by_backend = {r.backend: r for r in records}
    assert set(by_backend) == {"erst", "ramoops"}
    assert "Out of memory" in by_backend["erst"].report.headline
    oops = by_backend["ramoops"]
    assert oops.reason == "Oops" and len(oops.paths) == len(chunks)
    assert (oops.report.headline, oops.report.function) == (EXPECTED.headline, EXPECTED.function)


def test_a_compressed_enc_z_record_is_inflated(tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    chunk = kernel_chunks(SYSRQ, "Panic", 100000)[0].encode()
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)  # the kernel's deflate: raw, no header
    (live / f"{efi_name(1)}.enc.z").write_bytes(squeeze.compress(chunk) + squeeze.flush())
    records, problems = read_records([str(live)])
    assert problems == []
    assert records[0].report.headline.startswith("Kernel panic - not syncing: sysrq triggered crash")


def test_an_undecodable_compressed_record_is_reported_not_dropped(tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    (live / f"{efi_name(1)}.enc.z").write_bytes(b"\x04\x22\x4d\x18not deflate")  # an lz4 frame magic
    records, problems = read_records([str(live)])
    assert len(records) == 1 and "cannot read" in records[0].note
    assert problems == [f"{live / efi_name(1)}.enc.z: {records[0].note}"]


def test_systemd_pstore_archive_subdirectories_and_joined_dmesg_txt(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    chunks = kernel_chunks(SYSRQ, "Panic", 700)
    names = [efi_name(n) for n in range(1, len(chunks) + 1)]
    sub = archive / names[0][len("dmesg-efi-") : -6]
    sub.mkdir(parents=True)
    for name, chunk in zip(names, chunks):
        (sub / name).write_text(chunk)
    # systemd-pstore's dmesg.txt: the parts in reverse order, each after a "NAME:" line
    (sub / "dmesg.txt").write_text("".join(f"{n}:\n{c}" for n, c in reversed(list(zip(names, chunks)))))
    only_joined = archive / "17690001"
    only_joined.mkdir()
    text = kernel_chunks(OOM, "Panic", 100000)[0]
    (only_joined / "dmesg.txt").write_text(f"{efi_name(1, 1769000100)}:\n{text}")
    records, problems = read_records([str(archive)])
    assert problems == []
    assert sorted(r.report.headline.split(":")[0] for r in records) == ["Kernel panic - not syncing"] * 2
    assert {len(r.paths) for r in records} == {len(chunks), 1}


def test_the_same_dump_live_and_archived_is_one_record(tmp_path: Path) -> None:
    live, archive = tmp_path / "live", tmp_path / "archive"
    live.mkdir()
    archive.mkdir()
    chunk = kernel_chunks(SYSRQ, "Panic", 100000)[0]
    (live / "dmesg-ramoops-0").write_text(chunk)
    (archive / "dmesg-ramoops-0").write_text(chunk)
    records, _ = read_records([str(live), str(archive)])
    assert len(records) == 1


def test_missing_and_unreadable_sources(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    records, problems = read_records([str(tmp_path / "absent"), str(not_a_dir)])
    assert records == []
    assert problems == [f"cannot read {not_a_dir}: Not a directory"]


def test_records_are_never_moved_or_deleted(tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    for number, chunk in enumerate(kernel_chunks(SYSRQ, "Panic", 700), start=1):
        (live / efi_name(number)).write_text(chunk)
    before = sorted(os.listdir(live))
    read_records([str(live)])
    assert sorted(os.listdir(live)) == before
