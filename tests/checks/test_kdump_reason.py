"""Reason extraction from kernel logs: the three real fixtures, and the other documented wordings.

The logs after the fixtures are written for these tests from the formats in kdump-layouts.md
section 4 (older x86 wording, arm64, ppc64, s390, journal prefixes, lockups, hung tasks,
WARNINGs), with made-up addresses: they check that the rules generalise beyond the fixtures.
"""

from __future__ import annotations

import pytest
from kdump_helpers import NULL_DEREF, OOM, SYSRQ
from monagent.checks.kdump_reason import parse_dmesg, split_lines


def summary(text: str) -> tuple:
    r = parse_dmesg(text)
    return r.headline, r.function, r.module, r.comm, r.pid, r.kernel, r.taint, r.test_crash


def test_the_fedora_sysrq_crash_is_a_test_crash_in_sysrq_handle_crash():
    assert summary(SYSRQ) == (
        "Kernel panic - not syncing: sysrq triggered crash",
        "sysrq_handle_crash+0x11/0x20",
        "",
        "bash",
        "4952",
        "5.4.0-0.rc6.git0.1.fc32.x86_64",
        "not tainted",
        True,
    )


def test_the_rhel7_panic_on_oom_takes_the_function_from_the_call_trace():
    assert summary(OOM) == (
        "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled",
        "check_panic_on_oom+0x55/0x60",
        "",
        "webservice",
        "35943",
        "3.10.0-327.28.2.el7.x86_64",
        "not tainted",
        False,
    )


def test_the_syzbot_null_dereference_prefers_the_bug_line_over_the_generic_panic():
    report = parse_dmesg(NULL_DEREF)
    assert summary(NULL_DEREF) == (
        "BUG: kernel NULL pointer dereference, address: 0000000000000086",
        "no symbol (0x86)",
        "",
        "syz-executor.0",
        "9969",
        "5.6.0-rc6-syzkaller",
        "not tainted",
        False,
    )
    assert report.panic == "Kernel panic - not syncing: Fatal exception"
    assert "ubi0: scanning is finished" not in report.excerpt  # another task's line (caller id T9967)


def test_timestamp_caller_id_level_and_journal_prefixes_are_stripped():
    lines = split_lines(
        "<4>[  202.652969][ T9969] BUG: x\n[    6.572893] [   C1] y\nMar 30 18:51:43 alfa kernel: z\n[14501930.727650,06] w\n"
    )
    assert [(line.text, line.caller) for line in lines] == [("BUG: x", "T9969"), ("y", "C1"), ("z", ""), ("w", "")]


OLD_X86_SYSRQ = """\
[  123.456789] SysRq : Trigger a crash
[  123.457000] BUG: unable to handle kernel NULL pointer dereference at           (null)
[  123.457100] IP: [<ffffffff813b9a36>] sysrq_handle_crash+0x16/0x20
[  123.457200] PGD 7a2e4067 PUD 7a2e5067 PMD 0
[  123.457300] Oops: 0002 [#1] SMP
[  123.457400] Modules linked in: nls_utf8 isofs
[  123.457500] CPU: 1 PID: 2195 Comm: bash Not tainted 3.13.0-24-generic #46-Ubuntu
[  123.457800] RIP: 0010:[<ffffffff813b9a36>]  [<ffffffff813b9a36>] sysrq_handle_crash+0x16/0x20
[  123.457900] RSP: 0018:ffff88007a0f3e68  EFLAGS: 00010082
[  123.459000] Kernel panic - not syncing: Fatal exception
"""

ARM64_MODULE = """\
Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
Mem abort info:
  ESR = 0x96000045
  EC = 0x25: DABT (current EL), IL = 32 bits
Internal error: Oops: 96000045 [#1] SMP
Modules linked in: faulty(O) scull(O) hello(O)
CPU: 0 PID: 161 Comm: sh Tainted: G           O      5.15.18 #1
Hardware name: linux,dummy-virt (DT)
pstate: 80000005 (Nzcv daif -PAN -UAO -TCO -DIT -SSBS BTYPE=--)
pc : faulty_write+0x14/0x20 [faulty]
lr : vfs_write+0xa8/0x2b0
sp : ffffffc008d0bd80
x29: ffffffc008d0bd80 x28: ffffff80020d8000 x27: 0000000000000000
Call trace:
 faulty_write+0x14/0x20 [faulty]
 ksys_write+0x68/0x100
Code: d2800001 d2800000 d503233f d50323bf (b900003f)
---[ end trace 74d48d1d94f94927 ]---
Kernel panic - not syncing: Oops: Fatal exception
"""

KERNEL_BUG_IN_MODULE = """\
[ 5100.100000] ------------[ cut here ]------------
[ 5100.100001] kernel BUG at fs/ext4/inode.c:2716!
[ 5100.100002] invalid opcode: 0000 [#1] SMP PTI
[ 5100.100003] CPU: 3 PID: 1234 Comm: kworker/u16:2 Tainted: P           OE     5.15.0-91-generic #101-Ubuntu
[ 5100.100004] Workqueue: writeback wb_workfn (flush-8:0)
[ 5100.100005] RIP: 0010:ext4_writepages+0x10f2/0x1110 [ext4]
[ 5100.100006] Call Trace:
[ 5100.100007]  <TASK>
[ 5100.100008]  do_writepages+0xd1/0x1a0
[ 5100.100009] Kernel panic - not syncing: Fatal exception
"""

GPF_6X = """\
[   70.100000][ T5827] Oops: general protection fault, probably for non-canonical address 0xdffffc0000000004: 0000 \
[#1] PREEMPT SMP KASAN PTI
[   70.100001][ T5827] KASAN: null-ptr-deref in range [0x0000000000000020-0x0000000000000027]
[   70.100002][ T5827] CPU: 0 UID: 0 PID: 5827 Comm: syz-executor187 Not tainted 6.14.0-rc4-syzkaller #0 PREEMPT(full)
[   70.100003][ T5827] RIP: 0010:nf_tables_newrule+0x1a2/0x2a70 net/netfilter/nf_tables_api.c:4101
[   70.100004][ T5827] Kernel panic - not syncing: Fatal exception
"""

SOFT_LOCKUP = """\
[  300.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 134s! [syz-executor4:4588]
[  300.000001] Modules linked in:
[  300.000002] CPU: 1 PID: 4588 Comm: syz-executor4 Not tainted 4.15.0-rc7+ #187
[  300.000003] RIP: 0010:__sanitizer_cov_trace_pc+0x0/0x50
[  300.000004] Kernel panic - not syncing: softlockup: hung tasks
"""

EARLIER_WARNING = """\
[  100.000000] ------------[ cut here ]------------
[  100.000001] WARNING: CPU: 0 PID: 5944 at ./include/net/sock.h:1508 strp_data_ready+0x2b7/0x390
[  100.000002] ---[ end trace 0000000000000000 ]---
[ 9000.000000] BUG: unable to handle page fault for address: ffffc90000a3c000
[ 9000.000001] #PF: supervisor read access in kernel mode
[ 9000.000002] Oops: 0000 [#1] SMP NOPTI
[ 9000.000003] CPU: 2 PID: 77 Comm: kswapd0 Tainted: G        W         5.10.0-28-amd64 #1 Debian 5.10.209-2
[ 9000.000004] RIP: 0010:shrink_page_list+0x4d1/0xc70
[ 9000.000005] Kernel panic - not syncing: Fatal exception
"""

PANIC_ON_WARN = """\
[  100.000000] ------------[ cut here ]------------
[  100.000001] WARNING: CPU: 0 PID: 5944 at ./include/net/sock.h:1508 strp_data_ready+0x2b7/0x390
[  100.000002] Kernel panic - not syncing: panic_on_warn set ...
[  100.000003] CPU: 0 PID: 5944 Comm: syz-executor0 Not tainted 4.17.0-rc3+ #36
[  100.000004] RIP: 0010:strp_data_ready+0x2b7/0x390
"""

JOURNAL_2_6 = """\
Mar 30 18:51:43 alfa kernel: BUG: unable to handle kernel paging request at 000000320000008c
Mar 30 18:51:43 alfa kernel: IP: [<ffffffff811d755b>] xfs_iflush_cluster+0x148/0x35a
Mar 30 18:51:43 alfa kernel: Oops: 0000 [#1] SMP
Mar 30 18:51:43 alfa kernel: Pid: 3242, comm: flush-8:16 Not tainted 2.6.32.10 #2
"""

PPC64_SYSRQ = """\
[  50.000000] sysrq: SysRq : Trigger a crash
[  50.000001] Unable to handle kernel paging request for data at address 0x00000000
[  50.000002] Faulting instruction address: 0xc0000000006ab4b0
[  50.000003] Oops: Kernel access of bad area, sig: 11 [#1]
[  50.000004] CPU: 3 PID: 4012 Comm: bash Not tainted 4.18.0-80.el8.ppc64le #1
[  50.000005] NIP:  c0000000006ab4b0 LR: c0000000006ac1e8 CTR: c0000000006ab480
[  50.000006] NIP [c0000000006ab4b0] sysrq_handle_crash+0x30/0x50
[  50.000007] LR [c0000000006ac1e8] __handle_sysrq+0xe8/0x280
[  50.000008] Kernel panic - not syncing: Fatal exception
"""

S390 = """\
[  80.000000] Unable to handle kernel pointer dereference in virtual kernel address space
[  80.000001] Failing address: 0000000000000000 TEID: 0000000000000483
[  80.000002] Oops: 0004 ilc:2 [#1] SMP
[  80.000003] CPU: 1 PID: 1069 Comm: bash Not tainted 5.14.0-70.13.1.el9_0.s390x #1
[  80.000004] Krnl PSW : 0704c00180000000 000000009f4b4c2a (dasd_int_handler+0x2a/0x30 [dasd_mod])
[  80.000005] Kernel panic - not syncing: Fatal exception in interrupt
"""

CUT_BEFORE_PANIC = """\
[  10.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[  10.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI
[  10.000002] CPU: 0 PID: 1 Comm: systemd Tainted: G            E     6.8.0-51-generic #52-Ubuntu
[  10.000003] RIP: 0010:my_probe+0x12/0x80 [mydrv]
"""


HUNG_TASK = """\
[  369.632092] INFO: task syz-executor1:12659 blocked for more than 120 seconds.
[  369.639385]       Not tainted 4.16.0+ #10
[  369.643677] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  369.651640] syz-executor1   D24528 12659   4453 0x00000004
[  369.657281] Call Trace:
[  369.659885]  __schedule+0x8fb/0x1ec0
[  369.663630]  schedule+0xf5/0x430
[  369.700010] Kernel panic - not syncing: hung_task: blocked tasks
[  369.700011] CPU: 1 PID: 868 Comm: khungtaskd Not tainted 4.16.0+ #10
[  369.700012] Call Trace:
[  369.700013]  dump_stack+0x1a7/0x27d
[  369.700014]  panic+0x1f8/0x42c
[  369.700015]  watchdog+0x90c/0xd60
"""

KILL_INIT = """\
[    2.100000] Run /sbin/init as init process
[    2.200000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100
[    2.300000] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-18-amd64 #1 Debian 6.1.76-1
[    2.400000] Call Trace:
[    2.500000]  <TASK>
[    2.600000]  dump_stack_lvl+0x44/0x5c
[    2.700000]  panic+0x118/0x2ed
[    2.800000]  do_exit.cold+0x15/0x15
"""

GPF_IN_INTERRUPT = """\
[  100.000000] general protection fault: 0000 [#1] SMP PTI
[  100.100000] Modules linked in: zfs(PO) zunicode(PO)
[  100.200000] CPU: 5 PID: 3021 Comm: z_wr_iss Tainted: P           O      4.15.0-20-generic #21-Ubuntu
[  100.300000] RIP: 0010:zio_ready+0x4c/0x2f0 [zfs]
[  100.400000] Kernel panic - not syncing: Fatal exception in interrupt
"""


@pytest.mark.parametrize(
    "log, expected",
    [
        (
            OLD_X86_SYSRQ,
            (
                "BUG: unable to handle kernel NULL pointer dereference at           (null)",
                "sysrq_handle_crash+0x16/0x20",
                "",
                "bash",
                "2195",
                "3.13.0-24-generic",
                "not tainted",
                True,
            ),
        ),
        (
            ARM64_MODULE,
            (
                "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000",
                "faulty_write+0x14/0x20",
                "faulty",
                "sh",
                "161",
                "5.15.18",
                "GO",
                False,
            ),
        ),
        (
            KERNEL_BUG_IN_MODULE,
            (
                "kernel BUG at fs/ext4/inode.c:2716!",
                "ext4_writepages+0x10f2/0x1110",
                "ext4",
                "kworker/u16:2",
                "1234",
                "5.15.0-91-generic",
                "POE",
                False,
            ),
        ),
        (
            GPF_6X,
            (
                "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000004: 0000 [#1] "
                "PREEMPT SMP KASAN PTI",
                "nf_tables_newrule+0x1a2/0x2a70",
                "",
                "syz-executor187",
                "5827",
                "6.14.0-rc4-syzkaller",
                "not tainted",
                False,
            ),
        ),
        (
            SOFT_LOCKUP,
            (
                "watchdog: BUG: soft lockup - CPU#1 stuck for 134s! [syz-executor4:4588]",
                "__sanitizer_cov_trace_pc+0x0/0x50",
                "",
                "syz-executor4",
                "4588",
                "4.15.0-rc7+",
                "not tainted",
                False,
            ),
        ),
        (
            EARLIER_WARNING,
            (
                "BUG: unable to handle page fault for address: ffffc90000a3c000",
                "shrink_page_list+0x4d1/0xc70",
                "",
                "kswapd0",
                "77",
                "5.10.0-28-amd64",
                "GW",
                False,
            ),
        ),
        (
            PANIC_ON_WARN,
            (
                "WARNING: CPU: 0 PID: 5944 at ./include/net/sock.h:1508 strp_data_ready+0x2b7/0x390",
                "strp_data_ready+0x2b7/0x390",
                "",
                "syz-executor0",
                "5944",
                "4.17.0-rc3+",
                "not tainted",
                False,
            ),
        ),
        (
            JOURNAL_2_6,
            (
                "BUG: unable to handle kernel paging request at 000000320000008c",
                "xfs_iflush_cluster+0x148/0x35a",
                "",
                "flush-8:16",
                "3242",
                "2.6.32.10",
                "not tainted",
                False,
            ),
        ),
        (
            PPC64_SYSRQ,
            (
                "Unable to handle kernel paging request for data at address 0x00000000",
                "sysrq_handle_crash+0x30/0x50",
                "",
                "bash",
                "4012",
                "4.18.0-80.el8.ppc64le",
                "not tainted",
                True,
            ),
        ),
        (
            S390,
            (
                "Unable to handle kernel pointer dereference in virtual kernel address space",
                "dasd_int_handler+0x2a/0x30",
                "dasd_mod",
                "bash",
                "1069",
                "5.14.0-70.13.1.el9_0.s390x",
                "not tainted",
                False,
            ),
        ),
        (
            CUT_BEFORE_PANIC,
            (
                "BUG: kernel NULL pointer dereference, address: 0000000000000008",
                "my_probe+0x12/0x80",
                "mydrv",
                "systemd",
                "1",
                "6.8.0-51-generic",
                "GE",
                False,
            ),
        ),
        (
            HUNG_TASK,
            (
                "INFO: task syz-executor1:12659 blocked for more than 120 seconds.",
                "watchdog+0x90c/0xd60",
                "",
                "khungtaskd",
                "868",
                "4.16.0+",
                "not tainted",
                False,
            ),
        ),
        (
            KILL_INIT,
            (
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
                "do_exit.cold+0x15/0x15",
                "",
                "init",
                "1",
                "6.1.0-18-amd64",
                "not tainted",
                False,
            ),
        ),
        (
            GPF_IN_INTERRUPT,
            (
                "general protection fault: 0000 [#1] SMP PTI",
                "zio_ready+0x4c/0x2f0",
                "zfs",
                "z_wr_iss",
                "3021",
                "4.15.0-20-generic",
                "PO",
                False,
            ),
        ),
    ],
    ids=[
        "old-x86-sysrq",
        "arm64-module",
        "kernel-bug-in-module",
        "gpf-6x-uid",
        "soft-lockup",
        "earlier-warning",
        "panic-on-warn",
        "journal-2.6",
        "ppc64-sysrq",
        "s390-psw",
        "log-ends-before-panic",
        "hung-task",
        "kill-init",
        "gpf-in-interrupt",
    ],
)
def test_the_rules_generalise_to_other_wordings_and_architectures(log, expected):
    assert summary(log) == expected


def test_the_excerpt_drops_register_and_hex_lines_but_keeps_the_faulting_ip():
    assert parse_dmesg(ARM64_MODULE).excerpt == (
        "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000",
        "Mem abort info:",
        "  ESR = 0x96000045",
        "  EC = 0x25: DABT (current EL), IL = 32 bits",
        "Internal error: Oops: 96000045 [#1] SMP",
        "Modules linked in: faulty(O) scull(O) hello(O)",
        "CPU: 0 PID: 161 Comm: sh Tainted: G           O      5.15.18 #1",
        "Hardware name: linux,dummy-virt (DT)",
        "pstate: 80000005 (Nzcv daif -PAN -UAO -TCO -DIT -SSBS BTYPE=--)",
        "pc : faulty_write+0x14/0x20 [faulty]",
        "lr : vfs_write+0xa8/0x2b0",
        "Call trace:",
        " faulty_write+0x14/0x20 [faulty]",
        " ksys_write+0x68/0x100",
        "---[ end trace 74d48d1d94f94927 ]---",
    )


def test_a_log_without_a_crash_gives_no_headline():
    report = parse_dmesg(
        "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)\n"
        "[    1.000000] sysrq: This sysrq operation is disabled.\n"
    )
    assert (report.found, report.kernel, report.test_crash) == (False, "6.1.0-18-amd64", False)


def test_binary_garbage_and_control_characters_do_not_break_parsing():
    text = "\x00\x1b[31m garbage \ufffd\n" + NULL_DEREF.replace("Comm: syz-executor.0", "Comm: syz\x07-executor.0")
    assert parse_dmesg(text).comm == "syz-executor.0"
