"""`eval classifier` and `eval sbir`: the numbers this issue is judged on, written as JSON."""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sketchshop import vocab
from sketchshop.datasets import IMAGE_EXTS, Sample, Skipped, read_imagefolder, read_labels_csv
from sketchshop.errors import UserError
from sketchshop.files import atomic_write

log = logging.getLogger(__name__)


def _write_json(path, obj) -> None:
    with atomic_write(Path(path), "w") as f:
        json.dump(obj, f, indent=1)


def _prominent(items: list[dict]) -> dict:
    """The detected item covering the largest area (ties: the more confident)."""
    def area(it):
        x1, y1, x2, y2 = it["box"]
        return (x2 - x1) * (y2 - y1), it.get("confidence", 0.0)
    return max(items, key=area)


def score(samples: list[Sample], preds: list[dict | None], colour_preds: list | None = None) -> dict:
    """Accuracy at each label's granularity: fine labels vs fine predictions, coarse ('top') vs coarse."""
    colour_preds = colour_preds or [p and p.get("colour") for p in preds]
    cat_hits, col_hits, per, conf, col_conf = [], [], {}, {}, {}
    for s, p, col in zip(samples, preds, colour_preds):
        if p is None:
            continue
        if s.category:
            fine = s.category in vocab.FINE_CATEGORIES
            pred = p["category"] if fine else vocab.coarse(p["category"])
            ok = pred == s.category
            cat_hits.append(ok)
            d = per.setdefault(s.category, {"n": 0, "correct": 0})
            d["n"] += 1
            d["correct"] += int(ok)
            conf.setdefault(s.category, {}).setdefault(pred, 0)
            conf[s.category][pred] += 1
        if s.colour:
            col_hits.append(col == s.colour)
            col_conf.setdefault(s.colour, Counter())[col or "none"] += 1
    for d in per.values():
        d["top1"] = round(d["correct"] / d["n"], 4)
    labels = sorted(set(conf) | {p for row in conf.values() for p in row},
                    key=lambda c: (vocab.FINE_CATEGORIES + ("top",)).index(c))
    matrix = [[conf.get(t, {}).get(q, 0) for q in labels] for t in labels]
    return {"category_top1": round(float(np.mean(cat_hits)), 4) if cat_hits else None,
            "colour_top1": round(float(np.mean(col_hits)), 4) if col_hits else None,
            "n_category": len(cat_hits), "n_colour": len(col_hits),
            "per_class": per, "confusion_labels": labels, "confusion": matrix,
            "colour_confusion": {c: dict(col_conf[c]) for c in vocab.COLOURS if c in col_conf}}


def evaluate_classifier(samples: list[Sample], clf, domain: str = "photo", detect: bool = False,
                        batch: int = 32, root: Path | None = None) -> dict:
    """Predict every sample (skipping unreadable images, listed in the result) and score them.

    Sketch samples may name a colour-hint layer in a `hints` column (relative to `root`).
    """
    from tqdm import tqdm
    from sketchshop.images import load_image
    detector = None
    if detect:
        try:
            from detector import Detector
        except ImportError:
            raise UserError("--detect needs the detector package, which is not installed") from None
        detector = Detector.load()
    preds: list[dict | None] = [None] * len(samples)
    colour_preds: list = [None] * len(samples)
    skipped, t_model, n_done = Skipped(), 0.0, 0
    for i in tqdm(range(0, len(samples), batch), desc="eval classifier", unit="batch", mininterval=5):
        chunk = list(range(i, min(i + batch, len(samples))))
        ims, hints, idx = [], [], []
        for j in chunk:
            s = samples[j]
            try:
                ims.append(load_image(s.path))
                h = s.extra.get("hints")
                hints.append(load_image(Path(root or s.path.parent) / h, mode="RGBA")
                             if (h and domain == "sketch") else None)
                idx.append(j)
            except UserError as e:
                skipped.add(s.path, e)
        if not ims:
            continue
        if not n_done:  # untimed warm-up: the first runs start thread pools and plan ONNX Runtime's kernels
            if detector is None:
                clf.predict(ims[:4], kind=domain)
            else:
                _detect_and_classify(clf, detector, ims[0], domain)
        t0 = time.perf_counter()
        if detector is None:
            out = clf.predict(ims, kind=domain, hints=hints)
            for j, p in zip(idx, out):
                preds[j], colour_preds[j] = p, p["colour"]
        else:
            for j, im, h in zip(idx, ims, hints):
                found, ps = _detect_and_classify(clf, detector, im, domain, h)
                main = ps[found.index(_prominent(found))]
                preds[j] = main
                want = samples[j].category and vocab.coarse(samples[j].category)
                same = [p for f, p in zip(found, ps) if want and f.get("category") == want]
                colour_preds[j] = (same[0] if same else main)["colour"]
        t_model += time.perf_counter() - t0
        n_done += len(idx)
    skipped.check(n_done, len(samples))
    res = {"n": n_done, **score(samples, preds, colour_preds),
           "ms_per_image": round(t_model * 1000 / max(n_done, 1), 2),
           "ms_per_image_batch1": _latency(clf, samples, domain, detector),
           "domain": domain, "detect": detect, "skipped": skipped}
    return res


def _detect_and_classify(clf, detector, im, domain, hint=None) -> tuple[list[dict], list[dict]]:
    """The search's photo path: every garment found, cropped and given the detector's prior as the search does."""
    from detector.infer import classifier_inputs
    found = detector.predict(im)
    crops, priors, boxes = classifier_inputs(im, found)
    return found, clf.predict(crops, kind=domain, hints=[hint] * len(found), priors=priors, boxes=boxes)


def _latency(clf, samples, domain, detector, n: int = 10) -> float | None:
    """Median wall time of one image at batch 1 (decode excluded; preprocessing, model, colour)."""
    from sketchshop.images import load_image
    ims = []
    for s in samples[:n * 2]:
        try:
            ims.append(load_image(s.path))
        except UserError:
            continue
        if len(ims) == n:
            break
    if not ims:
        return None
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # for eager PyTorch; the ONNX Runtime session keeps the threads it was loaded with
    clf.predict(ims[:1], kind=domain)  # warm-up
    ts = []
    for im in ims:
        t0 = time.perf_counter()
        if detector is not None:
            _detect_and_classify(clf, detector, im, domain)
        else:
            clf.predict([im], kind=domain)
        ts.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return round(float(np.median(ts)) * 1000, 2)


def eval_classifier_cli(args) -> int:
    from .predict import Classifier
    if args.imagefolder:
        samples = read_imagefolder(args.imagefolder)
    else:
        if not args.labels:
            raise UserError("--images needs --labels CSV (or use --imagefolder DIR)")
        if not Path(args.images).is_dir():
            raise UserError(f"{args.images}: not a directory")
        samples = read_labels_csv(args.labels, args.images)
    if not any(s.category or s.colour for s in samples):
        raise UserError(f"{args.labels or args.imagefolder}: no category or colour label to compare with")
    from sketchshop.registry import weights_used
    clf = Classifier.load(args.weights)
    import torch
    torch.set_num_threads(2)
    res = evaluate_classifier(samples, clf, args.domain, args.detect, args.batch,
                              root=Path(args.images) if args.images else None)
    res.update(weights_used("classifier", args.weights))
    res["colour_naming"] = "fitted (colour_model.json beside the weights)" if clf.colour_model else "hand-set rule"
    _write_json(args.json, res)
    print(json.dumps({k: res[k] for k in ("n", "category_top1", "colour_top1", "ms_per_image", "ms_per_image_batch1")}))
    return 0


def _folder_images(d) -> dict[str, Path]:
    d = Path(d)
    if not d.is_dir():
        raise UserError(f"{d}: not a directory")
    out = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in out:
                log.warning("%s: %s and %s share a name; only the first is used", d, out[p.stem].name, p.name)
            out.setdefault(p.stem, p)
    if not out:
        raise UserError(f"{d}: no images")
    return out


def evaluate_sbir(clf, sketches: dict[str, Path], gallery: dict[str, Path], gallery_domain: str = "photo",
                  batch: int = 32, detector=None) -> dict:
    """Instance retrieval: rank every gallery item by cosine similarity to each sketch. With `detector`, a gallery
    photo is embedded as the search index embeds a product (`gallery_embedding`); images are read as the API reads
    a query (long side WORK_SIDE)."""
    from tqdm import tqdm
    from sketchshop.images import WORK_SIDE, load_image

    def embed(items: dict[str, Path], kind: str):
        keys, vecs, bad = [], [], Skipped()
        names = list(items)
        for i in tqdm(range(0, len(names), batch), desc=f"embed {kind}", unit="batch", mininterval=5):
            ims, ks = [], []
            for k in names[i:i + batch]:
                try:
                    ims.append(load_image(items[k], max_side=WORK_SIDE))
                    ks.append(k)
                except UserError as e:
                    bad.add(items[k], e)
            if ims and detector is not None and kind == "photo":
                vecs.append(np.stack([gallery_embedding(clf, detector, im) for im in ims]))
            elif ims:
                vecs.append(clf.embed(ims, kind=kind))
            keys += ks
        return keys, (np.concatenate(vecs) if vecs else np.zeros((0, clf.embed_dim), np.float32)), bad

    queries = {k: v for k, v in sketches.items() if k in gallery}
    if not queries:
        raise UserError("no sketch has a gallery image with the same file stem")
    gk, gv, gbad = embed(gallery, gallery_domain)
    qk, qv, qbad = embed(queries, "sketch")
    pos = {k: i for i, k in enumerate(gk)}
    ranks = []
    sims = qv @ gv.T
    for i, k in enumerate(qk):
        if k not in pos:
            continue
        ranks.append(int((sims[i] > sims[i, pos[k]]).sum()))
    if not ranks:
        bad = (gbad + qbad)[:1]
        raise UserError("no sketch could be matched with a readable gallery image"
                        + (f", e.g. {bad[0]['file']}: {bad[0]['error']}" if bad else ""))
    skipped = Skipped(gbad + qbad)
    skipped.check(len(ranks), len(gallery) + len(queries))
    r = np.array(ranks)
    return {"n": int(len(r)), "acc@1": round(float((r < 1).mean()), 4), "acc@5": round(float((r < 5).mean()), 4),
            "acc@10": round(float((r < 10).mean()), 4), "gallery_size": len(gk),
            "gallery": "detected" if detector is not None and gallery_domain == "photo" else "whole",
            "unmatched_sketches": len(sketches) - len(queries), "skipped": skipped}


def gallery_embedding(clf, detector, im) -> np.ndarray:
    """A product photo's embedding as the search index stores it: its most prominent detected garment, cropped with
    context (the whole image, trimmed, when nothing is found)."""
    found, preds = _detect_and_classify(clf, detector, im, "photo")
    return np.asarray(preds[found.index(_prominent(found))]["embedding"], np.float32)


def eval_sbir_cli(args) -> int:
    from .predict import Classifier
    clf = Classifier.load(args.weights)
    import torch
    torch.set_num_threads(2)
    detector = None
    if args.gallery_domain == "photo" and not args.whole_gallery:
        from detector import Detector
        detector = Detector.load()
    res = evaluate_sbir(clf, _folder_images(args.sketches), _folder_images(args.gallery), args.gallery_domain,
                        detector=detector)
    _write_json(args.json, res)
    print(json.dumps({k: res[k] for k in ("n", "acc@1", "acc@5", "acc@10")}))
    return 0
