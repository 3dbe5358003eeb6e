"""Schedules: cron parsing, due computation, a schedule that fires and is recorded, queued crawls."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC_A = ROOT / "crawler" / "specs" / "demo-a.yaml"


def test_cron_parsing_and_next_fire():
    from crawler.schedule import next_fire, parse_cron
    from sketchshop.errors import UserError
    assert next_fire("0 3 * * *", datetime(2026, 1, 1, 1, 0)) == datetime(2026, 1, 1, 3, 0)
    assert next_fire("*/15 * * * *", datetime(2026, 1, 1, 1, 0)) == datetime(2026, 1, 1, 1, 15)
    for bad in ("0 3 * *", "61 * * * *", "x y z a b", ""):
        with pytest.raises(UserError):
            parse_cron(bad)
    for never in ("0 0 30 2 *", "0 0 31 4 *"):  # February 30th, April 31st: valid fields, no such date
        with pytest.raises(UserError, match="never fires"):
            parse_cron(never)


@pytest.mark.parametrize("weekdays,fires_on", [
    ("0", "Sun"), ("7", "Sun"), ("1", "Mon"), ("6", "Sat"), ("sun", "Sun"), ("1-5", "Mon Tue Wed Thu Fri"),
    ("5-7", "Sun Fri Sat"), ("*/2", "Sun Tue Thu Sat"), ("1/2", "Mon Wed Fri"), ("0,3", "Sun Wed"), ("0-6", "*"),
    ("SAT,sun", "Sun Sat"), ("mon-wed", "Mon Tue Wed")])
def test_weekdays_are_numbered_as_cron_numbers_them(weekdays, fires_on):
    """0 and 7 are Sunday, 1 Monday (APScheduler's own numbers start at Monday: "0 3 * * 1" used to fire on
    Tuesdays, and "... * 7" was refused)."""
    from crawler.schedule import next_fire
    t, days = datetime(2026, 11, 22, 12, 0), set()  # a Sunday noon: the next 7 fires at 3 am cover every day once
    for _ in range(7):
        t = next_fire(f"0 3 * * {weekdays}", t)
        days.add(t.strftime("%a"))
    order = "Sun Mon Tue Wed Thu Fri Sat".split()
    assert sorted(days, key=order.index) == (order if fires_on == "*" else fires_on.split())


@pytest.mark.parametrize("bad", ["0 3 * * 8", "0 3 * * 5-2", "0 3 * * */0", "0 3 * * x", "\u0660 3 * * *",
                                 "0 3 * * \u0661"])
def test_weekday_and_non_ascii_mistakes_are_refused(bad):
    from crawler.schedule import parse_cron
    from sketchshop.errors import UserError
    with pytest.raises(UserError, match="cron"):
        parse_cron(bad)


def test_a_schedule_that_never_fires_stops_no_other(data_dir):
    """One stored before crons were checked for dates that exist: skipped alone, listed as never firing."""
    from catalog import open_catalog
    from catalog.models import Schedule
    from crawler.schedule import fire_due
    from sketchshop.cli import main
    cat = open_catalog()
    cat.add_schedule("ok", str(SPEC_A), "* * * * *")
    with cat.session() as s:
        s.add(Schedule(name="feb30", spec=str(SPEC_A), cron="0 0 30 2 *", options={}))
        for x in s.query(Schedule):
            x.created_at = datetime.utcnow() - timedelta(minutes=2)
    runs = fire_due(cat)
    assert [r["trigger"] for r in cat.runs() if r["id"] in runs] == ["schedule:ok"]
    assert main(["crawl", "schedule", "list"]) == 0


@pytest.mark.parametrize("options,culprit", [
    ({"browsers": "lots"}, "options.browsers"), ({"browsers": 0}, "options.browsers"),
    ({"max_pages": -1}, "options.max_pages"), ({"remote_url": "http://[::1"}, "remote_url"),
    ({"remote_url": "grid:4444"}, r"^options: remote_url must be an http\(s\) URL \(got 'grid:4444'\)$"),
    ({"reindex": "false"}, "options.reindex"), ({"threads": 4}, "unknown"), (["browsers"], "mapping"),
])
def test_crawl_options_are_checked_when_asked_for(data_dir, options, culprit):
    from catalog import open_catalog
    from sketchshop.errors import UserError
    cat = open_catalog()
    with pytest.raises(UserError, match=culprit):
        cat.request_crawl(str(SPEC_A), options=options)
    with pytest.raises(UserError, match=culprit):
        cat.add_schedule("x", str(SPEC_A), "0 3 * * *", options=options)
    assert cat.runs() == [] and cat.schedules() == []


def test_a_bad_queued_run_fails_alone(data_dir, capsys):
    """A row queued with options no crawl takes (stored before they were checked) is marked failed, and the queue
    goes on: it used to fail every scheduler tick, holding every run behind it. `crawl runs` names a run that never
    reached its shop by its spec (it showed '?')."""
    from catalog import open_catalog
    from catalog.models import CrawlRun
    from crawler.schedule import run_queued
    from sketchshop.cli import main
    cat = open_catalog()
    with cat.session() as s:
        s.add(CrawlRun(spec=str(SPEC_A), options={"browsers": "lots"}, trigger="api", status="queued"))
        s.add(CrawlRun(spec="/nonexistent.yaml", options={}, trigger="api", status="queued"))
    done = run_queued(cat)
    assert [(r["status"], "browsers" in (r["error"] or "") or "spec" in (r["error"] or "")) for r in done] == [
        ("failed", True), ("failed", True)]
    capsys.readouterr()
    assert main(["crawl", "runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in out[::2]] == [["failed", "nonexistent"], ["failed", SPEC_A.stem]]
    assert "cannot read spec" in out[1] and "browsers" in out[3]


def test_schedule_cli_add_list_remove(data_dir, capsys):
    from types import SimpleNamespace

    from sketchshop.cli import main

    def run(*a):
        rc = main(["crawl", "schedule", *a])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)
    r = run("add", "nightly", "--spec", str(SPEC_A), "--cron", "0 3 * * *", "--reindex")
    assert r.returncode == 0, r.stderr
    assert "nightly" in run("list").stdout
    r = run("add", "nightly", "--spec", str(SPEC_A), "--cron", "0 3 * * *")
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = run("add", "Nightly", "--spec", str(SPEC_A), "--cron", "0 4 * * *")
    assert r.returncode == 2 and "schedule 'nightly' already exists" in r.stderr
    r = run("add", "bad", "--spec", str(SPEC_A), "--cron", "every day")
    assert r.returncode == 2 and "cron" in r.stderr
    r = run("add", "nospec", "--spec", "/nonexistent.yaml", "--cron", "0 3 * * *")
    assert r.returncode == 2 and "cannot read spec" in r.stderr
    assert run("remove", "NIGHTLY").returncode == 0   # names ignore case, in removal too (a QA session)
    assert run("remove", "nightly").returncode == 2
    assert "no schedules" in run("list").stdout


def test_due_schedule_fires_once_and_is_recorded(data_dir, catalog_db, tmp_path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Chromium/chromedriver not installed (scripts/system-deps.sh)")
    from catalog import open_catalog
    from catalog.models import Schedule
    from crawler.schedule import run_due
    from crawler.shop import CATEGORY_NAMES, COLOUR_NAMES, ShopServer, build_products, create_app
    stock = build_products(6, seed=9)
    d = yaml.safe_load(SPEC_A.read_text())
    d["start_urls"] = [{"url": f"/c/{CATEGORY_NAMES[p.category][1]}?colour={COLOUR_NAMES[p.colour][1]}",
                        "facets": {"category": CATEGORY_NAMES[p.category][1], "colour": COLOUR_NAMES[p.colour][1]}}
                       for p in stock]
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump(d))
    cat = open_catalog()
    with ShopServer(create_app(stock)) as url:
        cat.add_schedule("every-minute", str(spec), "* * * * *", base_url=url, options={"browsers": 1})
        cat.add_schedule("yearly", str(spec), "0 0 1 1 *", base_url=url)
        now = datetime.utcnow().replace(second=30, microsecond=0)
        with cat.session() as s:  # created two minutes ago: due now
            for x in s.query(Schedule):
                x.created_at = now - timedelta(minutes=2)
        queued = cat.request_crawl(str(spec), base_url=url, options={"browsers": 1})   # as the admin API does
        assert queued["status"] == "queued"
        done = run_due(cat, now=now)
        assert [r["trigger"] for r in done] == ["api", "schedule:every-minute"]
        assert all(r["status"] == "done" for r in done)
        assert done[0]["new"] == 6 and done[1]["new"] == 0 and done[1]["products"] == 6
        sched = {x["name"]: x for x in cat.schedules()}
        assert sched["every-minute"]["last_run_id"] == done[1]["id"] and sched["every-minute"]["last_fired_at"]
        assert sched["yearly"]["last_run_id"] is None
        assert run_due(cat, now=now + timedelta(seconds=20)) == []        # same minute: nothing fires again
        again = run_due(cat, now=now + timedelta(minutes=1))
        assert [r["trigger"] for r in again] == ["schedule:every-minute"]
    assert cat.stats()["products"] == 6 and len(cat.runs()) == 3


def test_one_crawl_per_shop(data_dir, catalog_db):
    from catalog import open_catalog
    cat = open_catalog()
    sid = cat.get_shop("busy-shop")
    assert cat.acquire_shop(sid, "host:1:a")
    assert not cat.acquire_shop(sid, "host:2:b")       # held by another crawler
    assert cat.acquire_shop(sid, "host:1:a")           # renewal by the holder
    cat.release_shop(sid, "host:1:a")
    assert cat.acquire_shop(sid, "host:2:b")


@pytest.mark.parametrize("catalog_db", ["postgresql"], indirect=True)  # SQLite: one writer, one scheduler
def test_a_schedule_being_fired_elsewhere_is_skipped(data_dir, catalog_db):
    """Two scheduler hosts on one PostgreSQL catalogue: the second skips the rows the first is firing."""
    import threading

    from sqlalchemy import select

    from catalog import open_catalog
    from catalog.models import Schedule
    from crawler.schedule import fire_due
    cat = open_catalog()
    cat.add_schedule("nightly", str(SPEC_A), "0 3 * * *")
    later = datetime.utcnow() + timedelta(days=2)  # due by then
    got = []
    with cat.session() as s:  # the other scheduler, inside its fire_due: it holds the row
        s.scalars(select(Schedule).with_for_update()).all()
        t = threading.Thread(target=lambda: got.append(fire_due(cat, now=later)), daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), "fire_due waited for the lock instead of skipping the row"
    assert got == [[]]
    assert len(fire_due(cat, now=later)) == 1 and fire_due(cat, now=later) == []


def test_a_run_whose_crawler_died_goes_back_to_the_queue(data_dir, catalog_db):
    """Found by QA: after `kill -9` of the scheduler mid-crawl, its run stayed "running" and every later firing of
    the schedule was skipped ("still queued or running") for good. A run without a heartbeat for STALE_S is queued
    again (the next `run_queued` resumes it); a live one is left alone."""
    from catalog import open_catalog
    from catalog.models import CrawlRun
    from crawler.schedule import STALE_S, fire_due, requeue_orphans
    cat = open_catalog()
    cat.add_schedule("nightly", str(SPEC_A), "0 3 * * *")
    later = datetime.utcnow() + timedelta(days=2)  # due by then
    (dead,) = fire_due(cat, now=later)
    live = cat.request_crawl(str(SPEC_A))["id"]
    with cat.session() as s:
        for rid, beat in ((dead, later - timedelta(seconds=STALE_S + 5)), (live, later - timedelta(seconds=5))):
            r = s.get(CrawlRun, rid)
            r.status, r.started_at, r.heartbeat_at = "running", beat, beat
    assert requeue_orphans(cat, now=later) == [dead]
    assert cat.run(dead)["status"] == "queued" and cat.run(live)["status"] == "running"
    assert fire_due(cat, now=later + timedelta(days=1)) == []  # the requeued run is the schedule's, resumed next


def test_runs_a_stopping_scheduler_left_interrupted_are_queued_again(data_dir, catalog_db):
    """A scheduler stopped with SIGTERM leaves its run "interrupted"; nothing resumed it, though it said it would
    be (a QA session). A manual crawl's interrupted run, or one interrupted by a crash, is left as it is."""
    from catalog import open_catalog
    from catalog.models import CrawlRun
    from crawler.schedule import requeue_orphans
    cat = open_catalog()
    ids = [cat.request_crawl(str(SPEC_A), trigger=t)["id"] for t in ("schedule:nightly", "api", "manual", "api")]
    errors = ["Interrupted: run 1 stopped on request", "Interrupted: run 2 stopped on request",
              "Interrupted: run 3 stopped on request", "RuntimeError: a bug"]
    with cat.session() as s:
        for rid, err in zip(ids, errors):
            r = s.get(CrawlRun, rid)
            r.status, r.error = "interrupted", err
    assert requeue_orphans(cat) == ids[:2]
    assert [cat.run(i)["status"] for i in ids] == ["queued", "queued", "interrupted", "interrupted"]
