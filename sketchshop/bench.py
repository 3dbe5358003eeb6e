"""`sketchshop bench`: speed of every stage, measured in one run on this machine.

- search in process, per stage and end to end, for photos and for sketches with hints;
- the obvious pipeline on the same inputs (Ultralytics `predict`, the colouriser and classifier in
  eager PyTorch, brute-force numpy search), and the ratio, for photos and for sketches;
- how much a second thread speeds up the detector's network just before and after those (on a shared
  machine the second core comes and goes, which moves the speed-ups);
- HTTP load against `sketchshop serve` from a separate process at concurrency 1, 4 and 16;
- the vector index at 10k / 100k / 1M synthetic vectors (recall@10 against exact search);
- crawl and synth throughput.
Writes every figure to JSON and a markdown table. `--quick` keeps it to about a minute.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .cli import count
from .config import PROJECT_ROOT
from .errors import UserError
from .net import free_port

log = logging.getLogger(__name__)
SHARED = PROJECT_ROOT.parent / "shared" / "data"


def stats_ms(xs) -> dict:
    a = np.asarray(xs, dtype=np.float64)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 2),
            "p95": round(float(np.percentile(a, 95)), 2), "mean": round(float(a.mean()), 2)}


def _photos(n: int) -> list[Path]:
    val = SHARED / "clothing-small" / "validation"
    if val.is_dir():
        files = sorted(val.glob("*/*.jpg"))
        return files[:: max(1, len(files) // n)][:n]
    out = Path(tempfile.mkdtemp()) / "studio"
    from .studio import synth
    synth(n, out, seed=7, scenes=0)
    return sorted((out / "images").glob("*.jpg"))[:n]


def _sketches(n: int):
    from .studio import generate_products
    return [(p.sketch, p.hints) for p in generate_products(n, seed=11)]


# ---------------------------------------------------------------- in process
def time_paired(runs: tuple, inputs, repeats: int) -> list[dict]:
    """Per run, {stage: stats_ms}: each `run(x)` returns ms per stage. After a warm-up on two inputs, the
    runs take turns input by input (the first one alternating), so that a change in the machine's speed
    during the bench (its neighbours come and go) reaches every pipeline alike."""
    for x in inputs[:2]:
        for run in runs:
            run(x)
    stages: list[dict[str, list]] = [{} for _ in runs]
    for r in range(repeats):
        for i, x in enumerate(inputs):
            order = list(range(len(runs)))
            for j in (order if (r + i) % 2 == 0 else order[::-1]):
                for k, v in runs[j](x).items():
                    stages[j].setdefault(k, []).append(v)
    return [{k: stats_ms(v) for k, v in st.items()} for st in stages]


def bench_pipelines(searcher, photos, sketches, repeats: int) -> tuple[dict, dict]:
    """(ours, the obvious pipeline's) stage times on the same photos and sketches, timed in turns. When
    the obvious pipeline cannot run, ours is timed alone and the second dict holds {"error": why}."""
    from .images import load_image
    inputs = {"photo": [(load_image(p), None) for p in photos],
              "sketch": sketches if searcher.colorizer else []}
    mine, obvious = {}, {}
    with contextlib.ExitStack() as stack:
        try:
            theirs = stack.enter_context(_obvious_pipeline(searcher))
        except UserError as e:
            theirs, obvious["error"] = {}, str(e)
        for kind, xs in inputs.items():
            if not xs:
                continue
            ours = functools.partial(_search_ms, searcher, kind)
            timed = time_paired((ours, theirs[kind]) if kind in theirs else (ours,), xs, repeats)
            mine[kind] = timed[0]
            if len(timed) > 1:
                obvious[f"{kind}_total"] = timed[1].pop("total")
                obvious[f"{kind}_stages"] = timed[1]
    return mine, obvious


def second_core(detector, runs: int = 30) -> dict:
    """The detector's network on 1 and 2 threads ({"one_thread_ms", "two_threads_ms"}, medians). On a shared
    2-core machine the second core comes and goes; while it is busy, two threads gain nothing over one, and a
    pipeline on 2 threads (ours) loses more than one on 1 thread (the obvious one): this says which the run met.

    Where threads can be pinned, also why: one thread pinned to each of the first two cores in turn
    ("alone_ms": is one core slow by itself?) and to both at once ("together_ms": does each slow down while
    the other runs, as when the two share one physical core's time?)."""
    import threading

    from PIL import Image

    from detector.infer import letterbox
    from mobile_export.runtime import median_ms, session
    x, _ = letterbox(Image.new("RGB", (600, 800), "gray"), detector.imgsz, detector.stride)
    feed = {detector.input_name: x}
    out = {}
    for threads, key in ((1, "one_thread_ms"), (2, "two_threads_ms")):
        sess = session(detector.path, threads)
        out[key] = median_ms(lambda: sess.run(None, feed), runs=runs, warmup=1)
    cpus = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_setaffinity") else []
    if len(cpus) == 2:
        sessions = [session(detector.path, 1) for _ in cpus]

        def timed_on(i: int, got: list, start) -> None:
            os.sched_setaffinity(0, {cpus[i]})  # on Linux, pid 0 is the calling thread: this thread only
            if start:
                start.wait()
            got[i] = median_ms(lambda: sessions[i].run(None, feed), runs=runs, warmup=1)

        def pinned(together: bool) -> list[float]:
            got, start = [0.0, 0.0], threading.Barrier(2) if together else None
            ts = [threading.Thread(target=timed_on, args=(i, got, start)) for i in range(2)]
            for t in ts:
                t.start()
                if not together:
                    t.join()
            for t in ts:
                t.join()
            return got

        out["alone_ms"], out["together_ms"] = pinned(False), pinned(True)
    if out["one_thread_ms"] < 1.3 * out["two_threads_ms"]:
        log.warning("a second thread barely helps now (%s): the machine's other core is busy, so wall times read "
                    "high and our 2-thread pipeline's speed-up reads low", out)
    return out


def _search_ms(searcher, kind: str, x) -> dict:
    image, hints = x
    return searcher.search(image, kind=kind, hints=hints)["timing_ms"]


@contextlib.contextmanager
def _obvious_pipeline(searcher):
    """{"photo": run, "sketch": run} done the obvious way: detect with Ultralytics, colourise and classify
    with eager PyTorch (and measure each photo crop's colour, as ours does), search with numpy brute force.

    Torch runs on one thread here, as it does for any user of this pipeline: Ultralytics' `predict`
    sets torch to cpu_count - 1 threads (1 on 2 cores) when it selects the CPU."""
    import torch

    from classifier.colour import measured_colour
    from detector.ultra import ultralytics_offline

    from .registry import weights_path
    YOLO = ultralytics_offline().YOLO  # offline, and without its PIL.Image.open patch (field notes)
    pt = weights_path("detector").with_suffix(".pt")
    if not pt.is_file():
        raise UserError(f"{pt} missing: the obvious pipeline needs the Ultralytics checkpoint")
    yolo = YOLO(str(pt))
    clf, col = searcher.classifier, searcher.colorizer
    vectors = searcher.index._vectors_all()

    def classify_and_search(crops, photo: bool = True):
        with torch.no_grad():
            embs = [model(clf.preprocess(c)[None])["embedding"][0].numpy() for c in crops]
        if photo and clf.colour_mode != "head":  # the colour of each garment, measured as ours does
            for c in crops:
                measured_colour(c)
        t = time.perf_counter()
        for e in embs:
            np.argsort(-(vectors @ e))[:10]
        return t

    def photo(x):
        im = x[0]
        t0 = time.perf_counter()
        res = yolo.predict(im, verbose=False, imgsz=searcher.detector.imgsz)[0]
        crops = [im.crop(tuple(int(v) for v in b)) for b in res.boxes.xyxy.tolist()] or [im]
        t1 = time.perf_counter()
        t2 = classify_and_search(crops)
        return _ms(detect=t1 - t0, classify=t2 - t1, search=time.perf_counter() - t2)

    def sketch(pair):
        drawing, hints = pair
        fast, col.fast = col.fast, None  # the generator in eager PyTorch for this run; ours keeps its served copy
        try:
            t0 = time.perf_counter()
            coloured = col.colorize(drawing, hints=hints)
            t1 = time.perf_counter()
        finally:
            col.fast = fast
        t2 = classify_and_search([drawing, coloured], photo=False)
        return _ms(colorize=t1 - t0, classify=t2 - t1, search=time.perf_counter() - t2)

    model = clf.model.to(memory_format=torch.contiguous_format)  # ours runs in ONNX Runtime meanwhile
    try:
        yield {"photo": photo, **({"sketch": sketch} if col else {})}
    finally:
        clf.model.to(memory_format=torch.channels_last)


def _ms(**seconds) -> dict:
    return {**{k: v * 1000 for k, v in seconds.items()}, "total": sum(seconds.values()) * 1000}


# ---------------------------------------------------------------- HTTP
def _load_worker(url: str, files: list[str], concurrency: int, seconds: float, q) -> None:
    """Runs in its own process: `concurrency` threads post photos until the time is up."""
    import threading

    import requests
    lat, errors, lock = [], [0], threading.Lock()
    datas = [Path(f).read_bytes() for f in files]
    end = time.time() + seconds

    def loop(i):
        s = requests.Session()
        k = i
        while time.time() < end:
            t = time.perf_counter()
            try:
                r = s.post(url, files={"image": ("q.jpg", datas[k % len(datas)], "image/jpeg")}, timeout=30)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            dt = (time.perf_counter() - t) * 1000
            with lock:
                (lat.append(dt) if ok else None)
                errors[0] += 0 if ok else 1
            k += concurrency
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put({"lat": lat, "errors": errors[0], "seconds": time.time() - t0})


def _tree_memory_mb(pid: int, field: str = "VmRSS") -> float:
    """The sum over the process and its children of `VmRSS` (cheap to read; counts pages the gunicorn workers share
    with each other once per process) or of `Pss` (the shared pages split among their users: the real footprint,
    but reading it walks the page tables, so it is read once per load level)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/{'status' if field == 'VmRSS' else 'smaps_rollup'}").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def bench_http(photos, levels=(1, 4, 16), seconds: float = 10, workers: int = 2) -> dict:
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "sketchshop", "serve", "--port", str(port),
                            "--workers", str(workers)], stderr=subprocess.DEVNULL)
    import requests
    try:
        t = time.time()
        while time.time() - t < 180:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if srv.poll() is not None:
                raise UserError("`sketchshop serve` exited before it was ready")
            time.sleep(0.5)
        else:
            raise UserError("the server did not become ready in 180 s")
        out = {"workers": workers, "seconds_per_level": seconds}
        ctx = mp.get_context("spawn")
        for c in levels:
            q = ctx.Queue()
            p = ctx.Process(target=_load_worker, args=(f"http://127.0.0.1:{port}/v1/search",
                                                       [str(x) for x in photos], c, seconds, q))
            p.start()
            peak = 0.0
            while p.is_alive():
                peak = max(peak, _tree_memory_mb(srv.pid))
                time.sleep(0.2)
                if not q.empty():
                    break
            pss = _tree_memory_mb(srv.pid, "Pss")
            r = q.get(timeout=60)
            p.join(10)
            lat = np.asarray(r["lat"]) if r["lat"] else np.zeros(1)
            out[f"c{c}"] = {"rps": round(len(r["lat"]) / r["seconds"], 2), "errors": r["errors"],
                            "p50_ms": round(float(np.percentile(lat, 50)), 1),
                            "p95_ms": round(float(np.percentile(lat, 95)), 1),
                            "p99_ms": round(float(np.percentile(lat, 99)), 1),
                            "server_peak_rss_mb": round(peak, 1), "server_pss_mb": round(pss, 1)}
            log.info("HTTP concurrency %d: %s", c, out[f"c{c}"])
        return out
    finally:
        srv.terminate()
        try:
            srv.wait(15)
        except subprocess.TimeoutExpired:
            srv.kill()


# ---------------------------------------------------------------- index scale
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_index(sizes, dim: int, n_queries: int = 200) -> dict:
    import faiss
    rng = np.random.default_rng(0)
    out = {"dim": dim}
    for n in sizes:
        # Clustered vectors, closer to real embeddings than uniform noise (where HNSW is at its worst).
        centres = rng.normal(size=(max(16, n // 1000), dim)).astype(np.float32)
        x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = x[rng.integers(0, n, n_queries)] + 0.1 * rng.normal(size=(n_queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        exact = faiss.IndexFlatIP(dim)
        exact.add(x)
        _, truth = exact.search(q, 10)
        from catalog.index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, HNSW_THRESHOLD, add_vectors
        rss0, t = _rss_mb(), time.perf_counter()
        if n >= HNSW_THRESHOLD:  # the served index's parameters (catalog.index)
            idx = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            add_vectors(idx, x)
            idx.hnsw.efSearch = HNSW_EF_SEARCH
            kind = "hnsw"
        else:
            idx, kind = exact, "flat"
        build_s = time.perf_counter() - t
        faiss.omp_set_num_threads(1)  # as served: one query, one thread
        lat, found = [], []
        for i in range(n_queries):
            t = time.perf_counter()
            _, ids = idx.search(q[i:i + 1], 10)
            lat.append((time.perf_counter() - t) * 1000)
            found.append(len(set(ids[0]) & set(truth[i])) / 10)
        out[str(n)] = {"kind": kind, "build_s": round(build_s, 2), "index_mb": round(_rss_mb() - rss0, 1)
                       if kind == "hnsw" else round(x.nbytes / 2**20, 1),
                       "query_ms": stats_ms(lat), "recall@10": round(float(np.mean(found)), 4)}
        log.info("index %d: %s", n, out[str(n)])
        del idx, exact, x
    return out


# ---------------------------------------------------------------- throughput
def bench_synth(n: int) -> dict:
    from .studio import synth
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        synth(n, Path(d) / "s", seed=3, scenes=0)
        s = time.perf_counter() - t
    return {"products": n, "seconds": round(s, 2), "products_per_min": round(n / s * 60, 1)}


def bench_crawl(n: int, browsers: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "crawl.json"
        r = subprocess.run([sys.executable, "-m", "sketchshop", "crawl", "bench", "--products", str(n),
                            "--browsers", browsers, "--json", str(out)], capture_output=True, text=True)
        if r.returncode:
            return {"error": (r.stderr or r.stdout)[-500:]}
        return json.loads(out.read_text())


# ---------------------------------------------------------------- report
def markdown(res: dict) -> str:
    rows = ["| what | figure |", "|---|---|"]
    s = res.get("search", {})
    for kind in ("photo", "sketch"):
        for stage, v in s.get(kind, {}).items():
            rows.append(f"| {kind} search, {stage} | p50 {v['p50']} ms, p95 {v['p95']} ms |")
    for kind in ("photo", "sketch"):
        ob = res.get("obvious", {}).get(f"{kind}_total")
        if ob:
            rows.append(f"| obvious {kind} pipeline | p50 {ob['p50']} ms; ours is {res[f'speedup_{kind}']}x faster |")
            for stage, v in res["obvious"].get(f"{kind}_stages", {}).items():
                rows.append(f"| obvious {kind} pipeline, {stage} | p50 {v['p50']} ms, p95 {v['p95']} ms |")
    probe = res.get("second_core") or {}
    if probe:
        rows.append("| detector network on 1 / 2 threads, before and after the pipelines (a busy second core: 2 "
                    "threads gain little) | " + ", ".join(f"{probe[k]['one_thread_ms']} / {probe[k]['two_threads_ms']} ms"
                                                        for k in ("before", "after")) + " |")
        if all("alone_ms" in probe[k] for k in ("before", "after")):
            rows.append("| detector network on 1 thread pinned to each of two cores, alone / both at once, before and "
                        "after (each slowing down together: the two share one core's time) | " + ", ".join(
                            "{} ms alone, {} ms together".format(*(" / ".join(map(str, probe[k][m]))
                                                                   for m in ("alone_ms", "together_ms")))
                            for k in ("before", "after")) + " |")
    for k, v in res.get("http", {}).items():
        if k.startswith("c"):
            rows.append(f"| HTTP photo search, concurrency {k[1:]} | {v['rps']} req/s, p50 {v['p50_ms']} ms, "
                        f"p99 {v['p99_ms']} ms, {v['errors']} errors, server {v['server_peak_rss_mb']} MB RSS summed, "
                        f"{v.get('server_pss_mb', '?')} MB PSS |")
    for k, v in res.get("index", {}).items():
        if k != "dim":
            rows.append(f"| index {int(k):,} x {res['index']['dim']} ({v['kind']}) | top-10 p50 {v['query_ms']['p50']} ms, "
                        f"recall@10 {v['recall@10']}, build {v['build_s']} s, {v['index_mb']} MB |")
    if "synth" in res:
        rows.append(f"| synth | {res['synth']['products_per_min']} products/min |")
    for k, v in res.get("crawl", {}).items():
        if isinstance(v, dict) and "products_per_min" in v:
            rows.append(f"| crawl, {k} | {v['products_per_min']} products/min |")
    return "\n".join(rows) + "\n"


def bench(args) -> int:
    quick = args.quick
    res: dict = {"quick": quick, "cpu_count": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        sizes = tuple(int(n) for n in args.index_sizes.split(",")) if args.index_sizes else \
            ((10_000,) if quick else (10_000, 100_000, 1_000_000))
    except ValueError:
        raise UserError(f"--index-sizes must be comma-separated counts, not {args.index_sizes!r}") from None
    if any(n < 100 for n in sizes):
        raise UserError("--index-sizes: each size must be at least 100 vectors")
    if args.index_only:
        res["index"] = bench_index(sizes, dim=args.dim)
        return _write(res, args)
    photos = _photos(8 if quick else 40)
    try:
        from catalog.search import Searcher
        searcher = Searcher.load()
    except UserError as e:
        searcher = None
        res["search_error"] = str(e)
        log.warning("search not benchmarked: %s", e)
    if searcher is not None:
        import torch
        torch.set_num_threads(1)
        sketches = _sketches(4 if quick else 20)
        res["second_core"] = {"before": second_core(searcher.detector)}
        res["search"], res["obvious"] = bench_pipelines(searcher, photos, sketches, 4 if quick else 3)
        res["second_core"]["after"] = second_core(searcher.detector)
        if "error" in res["obvious"]:
            res["obvious_error"] = res.pop("obvious")["error"]
        for kind in ("photo", "sketch"):
            if f"{kind}_total" in res.get("obvious", {}):
                res[f"speedup_{kind}"] = round(res["obvious"][f"{kind}_total"]["p50"]
                                               / res["search"][kind]["total"]["p50"], 2)
        del searcher
        res["http"] = bench_http(photos, levels=(1, 4, 16), seconds=4 if quick else 20)
    res["index"] = bench_index(sizes, dim=args.dim)
    res["synth"] = bench_synth(20 if quick else 300)
    if not args.no_crawl:
        res["crawl"] = bench_crawl(60 if quick else 1000, "2" if quick else "1,2")
    return _write(res, args)


def _write(res: dict, args) -> int:
    from .files import atomic_write
    md = markdown(res)
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(res, f, indent=1)
        with atomic_write(Path(args.json).with_suffix(".md")) as f:
            f.write(md)
    print(md)
    return 0


def register(cli) -> None:
    p = cli.command("bench", bench, help="measure search, HTTP, index, crawl and synth speed on this machine")
    p.add_argument("--json", help="write every figure here (and a markdown table beside it)")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    p.add_argument("--dim", type=count(1), default=256, help="embedding size for the index-scale test")
    p.add_argument("--no-crawl", action="store_true", help="skip the crawl throughput")
    p.add_argument("--index-sizes", metavar="N,N", help="index sizes to measure (default 10000, or "
                                                         "10000,100000,1000000 without --quick)")
    p.add_argument("--index-only", action="store_true", help="measure only the index scale (no models, server, crawl)")
