"""Scheduled crawls: cron-style schedules live in the catalogue; one scheduler process runs them.

`run_due()` fires every due schedule once (missed fires coalesce into one), then runs every
queued crawl (from schedules or the admin API's `Catalog.request_crawl`) one after another, so
one scheduler never runs two crawls at once; the per-shop lease in the catalogue stops a second
process from crawling the same shop. `Scheduler` is the long-running process
(`sketchshop scheduler`): APScheduler ticks `run_due` (never run it inside web workers, where every
worker would fire every job). After a crawl a schedule can rebuild the search index.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from sketchshop.errors import UserError

log = logging.getLogger(__name__)


WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday(v: str) -> int:
    return WEEKDAYS.index(v) if v in WEEKDAYS else int(v) if v.isdigit() else -1


def _weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 Sunday, 1 Monday ... 6 Saturday, or names; lists, ranges, steps) as the list
    of day names APScheduler reads: its own numbers start at Monday, so `from_crontab` ran "0 3 * * 1" on Tuesdays."""
    days = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        if span == "*":
            lo, hi = 0, 6
        else:
            a, dash, b = span.partition("-")
            lo = _weekday(a)
            hi = _weekday(b) if dash else (6 if step else lo)
            if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
                raise ValueError(f"weekday {part!r}: 0-7 (0 and 7 are Sunday) or sun-sat, as a value, range or list")
        if step and not (step.isdigit() and int(step) > 0):
            raise ValueError(f"weekday {part!r}: a step is a whole number from 1")
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    return "*" if len(days) == 7 else ",".join(WEEKDAYS[d] for d in sorted(days))


def parse_cron(expr: str):
    """APScheduler CronTrigger for a 5-field crontab (UTC, weekdays numbered as cron numbers them); UserError if
    malformed."""
    from apscheduler.triggers.cron import CronTrigger
    fields = str(expr).split()
    if len(fields) != 5:
        raise UserError(f"cron {expr!r}: need 5 fields (minute hour day month weekday), e.g. '0 3 * * *'")
    if not str(expr).isascii():  # int() would read other scripts' digits
        raise UserError(f"cron {expr!r}: use ASCII digits, names and * , - /")
    minute, hour, day, month, weekday = fields
    try:
        trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday),
                              timezone=timezone.utc)
    except ValueError as e:
        raise UserError(f"cron {expr!r}: {e}") from None
    if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:  # "0 0 30 2 *": February 30th
        raise UserError(f"cron {expr!r} never fires (no such date)")
    return trigger


SCHEDULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_schedule_name(name) -> str:
    """A name that fits a URL path segment and a log line (the admin API deletes by name)."""
    if not isinstance(name, str) or not SCHEDULE_NAME.fullmatch(name):
        raise UserError(f"schedule name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def crawl_options(opts) -> dict:
    """A queued crawl's options, checked when it is asked for (not when the scheduler runs it at 3 am):
    browsers (1-16), max_pages (1-10,000,000), remote_url (a Selenium Grid's http(s) URL), reindex (a boolean)."""
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise UserError("options must be a mapping such as {'browsers': 2, 'max_pages': 10}")
    unknown = set(opts) - {"browsers", "max_pages", "remote_url", "reindex"}
    if unknown:
        raise UserError(f"options: unknown {sorted(unknown)} (known: browsers, max_pages, remote_url, reindex)")
    out = {}
    for key, lo, hi in (("browsers", 1, 16), ("max_pages", 1, 10_000_000)):
        v = opts.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise UserError(f"options.{key}: an integer from {lo} to {hi:,}, not {str(v)[:40]}")
        out[key] = v
    if opts.get("remote_url") is not None:
        from .spec import check_base_url
        out["remote_url"] = check_base_url(opts["remote_url"], "options", "remote_url", flag=None)
    if "reindex" in opts:
        if not isinstance(opts["reindex"], bool):
            raise UserError(f"options.reindex: true or false, not {opts['reindex']!r}")
        out["reindex"] = opts["reindex"]
    return out


def next_fire(expr: str, after: datetime | None = None) -> datetime:
    """First fire time strictly after `after` (naive UTC in, naive UTC out). UserError if it never fires."""
    after = (after or datetime.now(timezone.utc).replace(tzinfo=None)).replace(tzinfo=timezone.utc)
    trigger = parse_cron(expr)
    t = trigger.get_next_fire_time(None, after)
    if t is not None and t <= after:  # get_next_fire_time may return `after` itself when it matches exactly
        t = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    if t is None:
        raise UserError(f"cron {expr!r} never fires after {after:%Y-%m-%d %H:%M}")
    return t.astimezone(timezone.utc).replace(tzinfo=None)


def fire_due(cat, now: datetime | None = None) -> list[int]:
    """Queue one run for every enabled schedule whose next fire time has come. Returns run ids."""
    from catalog.models import CrawlRun, Schedule, utcnow
    now = now or utcnow()
    ids = []
    with cat.session() as s:
        # on PostgreSQL a second scheduler (another host) skips the rows this one is firing
        for x in s.scalars(select(Schedule).where(Schedule.enabled.is_(True)).with_for_update(skip_locked=True)):
            try:
                due = next_fire(x.cron, x.last_fired_at or x.created_at) <= now
            except UserError as e:  # stored before its cron was checked this well: it alone is skipped
                log.error("schedule %s: %s", x.name, e)
                continue
            if due:
                active = s.scalar(select(CrawlRun.id).where(CrawlRun.trigger == f"schedule:{x.name}",
                                                            CrawlRun.status.in_(("queued", "running"))))
                x.last_fired_at = now
                if active:
                    log.info("schedule %s is due but run %d is still queued or running; skipped", x.name, active)
                    continue
                opts = dict(x.options or {}, reindex=bool(x.reindex))
                run = CrawlRun(spec=x.spec, base_url=x.base_url, options=opts, trigger=f"schedule:{x.name}",
                               status="queued")
                s.add(run)
                s.flush()
                x.last_run_id = run.id
                ids.append(run.id)
                log.info("schedule %s fired: run %d queued", x.name, run.id)
    return ids


def _reindex() -> None:
    cmd = [sys.executable, "-m", "sketchshop", "index", "build"]
    log.info("re-indexing: %s", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        log.error("re-index failed (exit %d): %s", r.returncode, (r.stderr or "").strip()[-500:])


def run_queued(cat, progress: bool = False) -> list[dict]:
    """Run queued crawls one at a time (oldest first). A run whose spec is broken is marked failed."""
    from catalog.models import CrawlRun, utcnow

    from .crawl import Interrupted, ShopBusy, crawl
    from .spec import load_spec
    done, busy = [], set()
    while True:
        with cat.session() as s:
            run = s.scalar(select(CrawlRun).where(CrawlRun.status == "queued", CrawlRun.id.not_in(busy or {0}))
                           .order_by(CrawlRun.id))
            if run is None:
                return done
            run_id, spec_path, base_url, opts = run.id, run.spec, run.base_url, dict(run.options or {})
            trigger = run.trigger
        try:
            opts = crawl_options(opts)  # rows queued before options were checked
            spec = load_spec(spec_path, base_url=base_url)
            res = crawl(spec, browsers=opts.get("browsers", 2), max_pages=opts.get("max_pages"),
                        remote_url=opts.get("remote_url"), run_id=run_id, trigger=trigger, catalog=cat,
                        progress=progress)
            if opts.get("reindex") and res["status"] == "done":
                _reindex()
        except ShopBusy as e:
            log.warning("run %d stays queued: %s", run_id, e)
            busy.add(run_id)
            continue
        except Interrupted as e:  # the scheduler is stopping: the rest of the queue waits for the next one
            log.warning("%s", e)
            return done
        except UserError as e:
            log.error("run %d: %s", run_id, e)
            with cat.session() as s:
                r = s.get(CrawlRun, run_id)
                if r.status == "queued":   # not started (bad spec, shop busy): record why
                    r.status, r.error, r.finished_at = "failed", str(e), utcnow()
        done.append(cat.run(run_id))


STALE_S = 120  # a running crawl beats every 10 s and holds its shop's lease for 60 s


def requeue_orphans(cat, now: datetime | None = None) -> list[int]:
    """Back to the queue, where the next `run_queued` resumes them: runs left "running" by a crawler that died
    (kill -9, a crash, a reboot: no heartbeat for STALE_S; they blocked their schedule for good), and the
    scheduler's or the API's runs that a stopping scheduler left "interrupted" (nothing else would resume them)."""
    from catalog.models import CrawlRun, utcnow
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_S)
    with cat.session() as s:
        stale = s.scalars(select(CrawlRun).where(CrawlRun.status == "running",
                                                 func.coalesce(CrawlRun.heartbeat_at, CrawlRun.started_at) < cutoff)
                          .with_for_update(skip_locked=True)).all()
        for r in stale:
            log.warning("run %d has had no heartbeat since %s: its crawler is gone; queued again to be resumed",
                        r.id, r.heartbeat_at or r.started_at)
            r.status = "queued"
        stopped = s.scalars(select(CrawlRun).where(CrawlRun.status == "interrupted", CrawlRun.trigger != "manual",
                                                   CrawlRun.error.like("Interrupted:%"))
                            .with_for_update(skip_locked=True)).all()
        for r in stopped:
            log.info("run %d was stopped with the scheduler; queued again to be resumed", r.id)
            r.status = "queued"
        return [r.id for r in [*stale, *stopped]]


def run_due(cat=None, now: datetime | None = None) -> list[dict]:
    """Requeue orphaned runs, fire due schedules, then run every queued crawl. Returns the finished runs."""
    from catalog import open_catalog
    cat = cat or open_catalog()
    requeue_orphans(cat, now)
    fire_due(cat, now)
    return run_queued(cat)


class Scheduler:
    """The one scheduler process: an APScheduler loop that calls `run_due` every `poll_s` seconds."""

    def __init__(self, poll_s: float = 30.0, catalog=None):
        from catalog import open_catalog
        from sketchshop.config import settings
        self.poll_s = poll_s
        self.cat = catalog or open_catalog()
        self._lockfile = settings().path("scheduler.lock")

    def tick(self) -> None:
        try:
            for r in run_due(self.cat):
                log.info("run %s (%s) finished: %s, %s products", r["id"], r["trigger"], r["status"], r["products"])
        except Exception:  # the loop must survive one bad run
            log.exception("scheduler tick failed")

    def run_forever(self, max_ticks: int | None = None) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler
        lock = open(self._lockfile, "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another scheduler is running on this data directory ({self._lockfile})") from None
        logging.getLogger("apscheduler").setLevel(logging.WARNING)   # no line per tick
        # nor one per poll while a long crawl runs ("skipped: maximum number of running instances reached")
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        sched = BlockingScheduler(timezone=timezone.utc)
        ticks = {"n": 0}

        def job():
            self.tick()
            ticks["n"] += 1
            if max_ticks and ticks["n"] >= max_ticks:
                sched.shutdown(wait=False)

        sched.add_job(job, "interval", seconds=self.poll_s, max_instances=1, coalesce=True,
                      next_run_time=datetime.now(timezone.utc))
        log.info("scheduler running (checking every %.0f s); Ctrl-C to stop", self.poll_s)
        try:
            sched.start()
        except (KeyboardInterrupt, SystemExit):
            from .crawl import stop_all
            log.info("stopping: a running crawl is left interrupted, to resume next time")
            stop_all()
            with contextlib.suppress(Exception):
                sched.shutdown(wait=True)  # the crawl's thread marks its run before the process exits
        finally:
            lock.close()
