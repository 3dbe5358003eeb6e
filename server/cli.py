"""`sketchshop serve`: the API under gunicorn, N single-threaded workers, models loaded once per worker."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from sketchshop.cli import PORT, count

log = logging.getLogger(__name__)


def serve(args) -> int:
    # The cores shared out among the workers: by default one worker and one inference thread per core,
    # as several single-threaded workers give a better p99 than fewer multi-threaded ones on a small CPU
    # (field notes); fewer workers get more threads each, for a faster single request.
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    from gunicorn.app.base import BaseApplication

    from sketchshop.config import settings
    prom = _metrics_dir(settings().path("prometheus", "x").parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)

    class App(BaseApplication):
        def load_config(self):
            for k, v in {"bind": f"{args.host}:{args.port}", "workers": args.workers, "threads": 1,
                         "worker_class": "sync", "timeout": 120, "graceful_timeout": 10,
                         "accesslog": "-" if args.access_log else None, "preload_app": False,
                         "child_exit": _child_exit, "when_ready": _ready}.items():
                self.cfg.set(k, v)

        def load(self):
            import torch
            torch.set_num_threads(threads)  # and so the ONNX Runtime sessions' threads (sketchshop.accel)
            from server import create_app
            return create_app()

    def _ready(_arbiter):  # bound: said once the port is ours, not before a bind that may fail
        log.info("serving on http://%s:%d with %d workers, %d inference thread(s) each", args.host, args.port,
                 args.workers, threads)
    # The models' libraries (not the models) are imported before gunicorn forks, so that the workers share those
    # pages copy-on-write (2 workers: 1539 MB total PSS this way, 1706 MB when each worker imported its own).
    # Not OpenVINO: importing it starts 2 threads, which a forked worker would not have (sketchshop.accel imports
    # it in each worker, when the colouriser loads).
    import classifier.predict, colorizer.infer, detector.infer, server.api  # noqa: E401, F401
    import gunicorn.util
    gunicorn.util.write_error = _json_error
    try:
        App().run()
    finally:
        shutil.rmtree(prom, ignore_errors=True)
    return 0


def _metrics_dir(root: Path) -> Path:
    """This server's own Prometheus multiprocess directory: another `serve` on the same data directory (or one
    that fails to bind) must not wipe or mix into it. Directories of servers that are gone are removed."""
    from sketchshop.net import pid_alive
    root.mkdir(parents=True, exist_ok=True)
    for d in root.iterdir():
        if not (d.name.isdigit() and pid_alive(int(d.name))):
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    mine = root / str(os.getpid())
    mine.mkdir()
    return mine


GUNICORN_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 431: "headers_too_large",
                  501: "not_implemented", 500: "internal"}


def _json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answers (a request line or headers too long, a malformed request, before the app sees it)
    in the API's JSON error shape instead of gunicorn's HTML page."""
    code = GUNICORN_CODES.get(status_int, reason.lower().replace(" ", "_"))
    body = json.dumps({"error": {"code": code, "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    from gunicorn.util import write_nonblock
    write_nonblock(sock, head.encode("latin1") + body)


def _child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def register(cli) -> None:
    p = cli.command("serve", serve, help="run the API and the mobile web client with gunicorn")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 behind a proxy)")
    p.add_argument("--port", type=PORT, default=8000)
    p.add_argument("--workers", type=count(1), default=max(1, os.cpu_count() or 1),
                   help="worker processes (default: one per core); the cores are shared out among them as "
                        "inference threads")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
