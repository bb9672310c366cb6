"""At the agent's first start in a new boot: read every source, then decide one message.

Every source is read before anything is decided, each with its own bound: the first scan of every
``kdump`` check (through the scheduler, at most ``[reboot] wait``), the pstore directories (in a
worker process, ``pstore_timeout``) and the previous boot's journal (``journalctl`` children,
``journal_timeout`` each, in a thread alongside the scans). Then the pipeline takes the dumps'
crash cards and :func:`monagent.bootend.classify` decides the one message about the previous boot.
Nothing here depends on the group wait or on how fast a worker starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any, List, Optional, Tuple

from monagent.api import StuckCall
from monagent.bootend import Evidence, Verdict, classify
from monagent.lazylog import get_logger

log = get_logger(__name__)

KDUMP_TYPE = "kdump"


def _read_pstore(ctx: Any, directories: Tuple[str, ...], timeout: float) -> Tuple[List[Any], List[str]]:
    from monagent.checks.pstore import read_records

    try:
        # in-process when every directory is local (pstore, /var/lib): no worker started for it (#17)
        records, problems = ctx.run_blocking(read_records, directories, timeout=timeout, path=directories)
    except StuckCall:
        return [], [f"pstore ({', '.join(directories)}) did not answer within {timeout:g} s"]
    except OSError as exc:
        return [], [f"cannot read pstore: {exc.strerror or exc}"]
    for problem in problems:
        log.warning("pstore: %s", problem)
    return list(records), list(problems)


def explain_previous_boot(config: Any, scheduler: Any, pipeline: Any, facts: Any) -> Optional[Verdict]:
    """Remember the pstore records present; at the first start in a new boot, classify how the
    previous boot ended and queue its one message. Returns the verdict (None: same boot)."""
    from monagent.checks.journal_read import PreviousBoot, previous_boot

    settings = config.reboot
    now, mono = time.time(), time.monotonic()
    ctx = facts.cycle(now, mono)
    memory = pipeline.boot_change
    classify_now = memory is not None and settings.enabled
    journal_box: List[PreviousBoot] = []
    reader: Optional[threading.Thread] = None
    if classify_now and settings.journal:

        def read_journal() -> None:
            journal_box.append(previous_boot(timeout=settings.journal_timeout, journalctl=settings.journalctl))

        reader = threading.Thread(target=read_journal, name="previous-boot-journal", daemon=True)
        reader.start()
    records, problems = _read_pstore(ctx, settings.pstore_dirs, settings.pstore_timeout)
    fresh = pipeline.new_pstore(records, now)
    if not classify_now:
        return None
    kdump = [name for name, i in scheduler.instances.items() if i.config.enabled and i.config.type == KDUMP_TYPE]
    runs = []
    if kdump:
        clock = lambda: (time.time(), time.monotonic())  # noqa: E731 - the scheduler's clock argument
        runs = scheduler.run_all_once(now, mono, time.sleep, clock, only=kdump, deadline=mono + settings.wait)
        late = [n for n in kdump if n not in {r.check for r in runs}]
        if late:
            problems.append(f"kdump check {', '.join(late)} did not finish its scan within {settings.wait:g} s")
    journal: Optional[PreviousBoot] = None
    if reader is not None:
        reader.join(2 * settings.journal_timeout + 5.0)  # two journalctl calls, each killed at its timeout
        journal = journal_box[0] if journal_box else PreviousBoot(available=False, error="journal reader did not finish")
    dumps = pipeline.new_dumps(runs, ctx.boot_time())
    if runs:
        pipeline.observe(runs, time.time(), time.monotonic())
    evidence = Evidence(
        memory=memory,
        boot_time=ctx.boot_time(),
        dumps=tuple(dumps),
        pstore=tuple(fresh),
        journal=journal,
        problems=tuple(problems),
        kernel_lines=settings.kernel_lines,
    )
    verdict = classify(evidence, unplanned_severity=settings.unplanned_severity)
    pipeline.explain_boot(verdict, ctx.boot_id(), time.time())
    return verdict
