"""Training on cached early features: a recipe that fits a shared 2-core CPU.

The stem and the first stages of the backbone stay at their ImageNet weights; their outputs for
a few augmented views of every image (real photos, XDoG drawings of those photos, studio renders
and studio sketches) are computed once and cached. The late stages and all heads are then
fine-tuned on the cache: about a third of the network's compute per step, so many epochs fit where
a full fine-tune would fit one. One training run covers every head: category (real photos,
drawings, studio), colour and attributes (studio, masked where missing or not applicable) and the
embedding (InfoNCE between each drawing and its photo). Checkpoints every epoch; rerun to resume.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.files import atomic_write

from . import data as D
from .model import CHECKPOINT_FORMAT, GROUPS, GarmentNet, read_checkpoint, split_backbone

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str = "../shared/data/clothing-small"     # ImageFolder with train/ and validation/
    backbone: str = "efficientnet_lite0"
    frozen: int = 3                                  # backbone stages kept at ImageNet weights (cached)
    epochs: int = 14
    views: int = 4                                   # cached augmented views per real photo
    sketch_views: int = 1                            # cached drawings (and studio photo views) per item
    doodle: float = 0.0                              # share of training drawings that are outline doodles
    batch: int = 32                                  # real photos per step (+ half as many drawings, + studio)
    studio_batch: int = 8                            # studio product pairs per step
    street: str = ""                                 # COCO json of street photos to cut garments from ("": none)
    street_batch: int = 8                            # street crops per step
    lr: float = 5e-4                                 # late backbone stages; heads get 5x
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    ema: float = 0.99
    drop_path: float = 0.1
    infonce_weight: float = 1.0
    patience: int = 4                                # early stop: epochs without val improvement
    teacher: str = ""                                # trained classifier weights to distil from, comma-separated ("": none)
    distill: float = 1.0                             # weight of the KL to the teacher's calibrated category probabilities
    size: int = D.SIZE                               # training crops
    # Inference size (FixRes): RandomResizedCrop(0.5-1) shows a garment about 1/sqrt(0.75) ~ 1.17x
    # larger in training than a letterboxed whole photo shows it, so inference runs at 224 x 1.17 ~ 256.
    infer_size: int = 256
    studio_n: int = 600                              # studio products rendered (85 % train, 15 % validation)
    seed: int = 0
    workdir: str = "var/train/classifier"
    out: str = "models/classifier"


# ------------------------------------------------------------------ shared helpers

class EMA:
    """Exponential moving average of all weights and BN buffers (evaluated and shipped)."""

    def __init__(self, model, decay):
        self.decay, self.model = decay, copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(m.detach(), alpha=1 - self.decay)
            else:
                e.copy_(m)


def multitask_loss(out: dict, batch: dict, smoothing: float) -> tuple[torch.Tensor, dict]:
    """Sum of the heads' losses; a label of -1 (missing, or not applicable to the category) is masked."""
    parts = {}
    coarse = batch.get("coarse")
    if coarse is not None and (m := coarse >= 0).any():
        p_group = out["category"][m].softmax(1) @ GROUPS.T
        parts["coarse"] = F.nll_loss(p_group.clamp_min(1e-8).log(), coarse[m])
    for key, target in (("category", batch["category"]), ("colour", batch["colour"]),
                        *((f"attr_{a}", batch["attributes"][a]) for a in vocab.ATTRIBUTES)):
        m = target >= 0
        if m.any():
            parts[key] = F.cross_entropy(out[key][m], target[m], label_smoothing=smoothing if key == "category" else 0.0)
    total = sum(parts.values()) if parts else out["category"].sum() * 0
    return total, {k: float(v.detach()) for k, v in parts.items()}


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` (drawing) should match row i of `b` (photo) within the batch."""
    logits = a @ b.T / temperature
    y = torch.arange(len(a))
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2


def label_arrays(items: list[D.Item], colour: bool = True) -> dict:
    """Category / colour / attribute label tensors; attributes not applying to the category are -1."""
    cat = torch.tensor([it.category for it in items])
    attrs = {}
    for a, spec in vocab.ATTRIBUTES.items():
        attrs[a] = torch.tensor([it.attributes.get(a, -1) if it.category >= 0 and
                                 vocab.FINE_CATEGORIES[it.category] in spec.applies_to else -1 for it in items])
    col = torch.tensor([it.colour if colour else -1 for it in items])
    coarse = torch.tensor([it.coarse if it.category < 0 else -1 for it in items])
    return {"category": cat, "colour": col, "attributes": attrs, "coarse": coarse}


@torch.no_grad()
def predict_items(model, items: list[D.Item], size: int, batch: int = 64, sketch: bool = False) -> dict:
    """Logits of every head for cached items through the full model and the inference preprocessing."""
    from PIL import Image
    model.eval()
    outs: dict[str, list] = {}
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        x = torch.stack([D.preprocess(Image.fromarray(it.sketch if sketch else it.image), size) for it in chunk])
        for k, v in model(x.contiguous(memory_format=torch.channels_last)).items():
            outs.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in outs.items()}


def _save(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val")}  # clothing-small's, `dataset classify`'s


def data_roots(data: str) -> list[Path]:
    """The ImageFolder roots of --data (say the shared photos and a fresh crawl's dataset), comma-joined in the config."""
    return [Path(r.strip()) for r in str(data).split(",") if r.strip()]


def _split_dir(root: Path, split: str) -> Path:
    for name in SPLIT_NAMES[split]:
        if (root / name).is_dir():
            return root / name
    raise UserError(f"{root}: no {' or '.join(n + '/' for n in SPLIT_NAMES[split])} folder "
                    f"(each --data root holds train/ and validation/ class folders)")


def _real_items(cfg, split: str):
    from sketchshop.datasets import read_imagefolder
    samples = [s for root in data_roots(cfg.data) for s in read_imagefolder(_split_dir(root, split))]
    return D.load_items(samples, desc=f"loading {split}")


@functools.cache
def data_fingerprint(data: str) -> str:
    """Of every file under the --data roots (name, size, time): a rebuilt dataset never meets old cached features."""
    h = hashlib.sha256()
    for root in sorted(data_roots(data)):
        for f in sorted(root.rglob("*")) if root.is_dir() else []:
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:10]


# ------------------------------------------------------------------ the feature cache

@torch.no_grad()
def cached_features(name: str, early, items: list[D.Item], views: int, make_view, cfg, teacher=None):
    """(N, views, C, H, W) float16 early-stage features, computed once per (config, source).

    With `teacher` (tag, fn: images -> category log-probabilities), also the teacher's outputs on the
    very same views, (N, views, K) float32: the pair (features, teacher outputs) is returned.
    """
    from tqdm import tqdm
    key = (f"{name}_{cfg.backbone}_f{cfg.frozen}_s{cfg.size}_v{views}_seed{cfg.seed}_n{len(items)}"
           f"_d{data_fingerprint(str(cfg.data))}")
    path = Path(cfg.workdir) / "cache" / f"{key}.pt"
    tpath = path.with_name(f"{key}_teacher-{teacher[0]}.pt") if teacher else None
    if path.is_file() and (tpath is None or tpath.is_file()):
        feats = torch.load(path, weights_only=True)
        return (feats, torch.load(tpath, weights_only=True)) if tpath else feats
    rng = random.Random(f"{cfg.seed}-{name}")
    early.eval()
    feats = logits = None
    jobs = [(i, v) for i in range(len(items)) for v in range(views)]
    for k in tqdm(range(0, len(jobs), 32), desc=f"caching {name}", unit="batch", mininterval=15):
        chunk = jobs[k:k + 32]
        x = torch.stack([D.to_tensor(make_view(items[i], v, rng)) for i, v in chunk])
        x = x.contiguous(memory_format=torch.channels_last)
        f = early(x).half()
        t = teacher[1](x) if teacher else None
        if feats is None:
            feats = torch.empty((len(items), views, *f.shape[1:]), dtype=torch.float16)
            logits = torch.empty((len(items), views, t.shape[1])) if teacher else None
        for j, (i, v) in enumerate(chunk):
            feats[i, v] = f[j]
            if teacher:
                logits[i, v] = t[j]
    _save(feats, path)
    if teacher:
        _save(logits, tpath)
        return feats, logits
    return feats


def load_teacher(paths: str):
    """(tag, fn): the calibrated category log-probabilities of one trained classifier, or the mean
    probabilities of several (comma-separated weights files), for distillation."""
    from sketchshop.registry import sha256
    from .predict import Classifier
    files = paths.split(",")
    clfs = [Classifier.load(p) for p in files]
    tag = hashlib.sha256("".join(sha256(Path(p)) for p in files).encode()).hexdigest()[:12]

    @torch.no_grad()
    def log_probs(x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([(c.model(x)["category"].float() / c.temperature).softmax(1) for c in clfs]).mean(0)
        return p.clamp_min(1e-8).log()
    return tag, log_probs


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) on category probabilities (the teacher's calibrated ones, T = 1)."""
    return F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), log_target=True, reduction="batchmean")


def _views(cfg):
    """View makers: (item, view index, rng) -> letterboxed PIL image."""
    from PIL import Image
    from .studio_data import sketch_of

    def plain(it, v, rng):
        return D.letterbox(Image.fromarray(it.image), cfg.size)

    def plain_sketch(it, v, rng):
        return D.letterbox(Image.fromarray(it.sketch), cfg.size, (255, 255, 255))

    def photo(it, v, rng):
        return D.augment(it.image, rng, cfg.size, colour_jitter=it.source in ("photo", "street"))

    def drawing(it, v, rng):
        return D.augment(sketch_of(it, rng, cfg.doodle), rng, cfg.size, fill=(255, 255, 255))
    return plain, plain_sketch, photo, drawing


# ------------------------------------------------------------------ training

def check_resumable(cfg: TrainConfig, saved: dict, ckpt: Path) -> None:
    """A checkpoint resumes only under the options it was trained with and on the same data (the paths, the
    served size and the patience may change); an option added since counts at its default."""
    mine = {k: v for k, v in asdict(cfg).items() if k not in ("out", "workdir", "data", "infer_size", "patience")}
    mine["data_fingerprint"] = data_fingerprint(cfg.data)
    saved = {**asdict(TrainConfig()), "data_fingerprint": mine["data_fingerprint"], **saved}  # older checkpoints
    diff = sorted(k for k in mine if saved[k] != mine[k])
    if diff:
        raise UserError(f"{ckpt}: checkpoint of another configuration ({', '.join(diff)} differ); "
                        "resume with the same options or use another --workdir")


def train(cfg: TrainConfig) -> Path:
    """Cache features, fine-tune late stages + heads, then write the shipped artefacts into cfg.out."""
    from tqdm import tqdm
    from .studio_data import load_studio, real_doodle_items, real_sketch_items, sbir_metrics
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(2)
    work = Path(cfg.workdir)
    train_items = _real_items(cfg, "train")
    val_items = _real_items(cfg, "validation")
    studio_train, studio_val, _ = load_studio(cfg)
    val_sk = real_sketch_items(val_items)
    val_dd = real_doodle_items(val_items)
    street_train, street_val = [], []
    if cfg.street:
        from .street import load_street
        street_train, street_val = load_street(cfg.street, "train"), load_street(cfg.street, "val")

    model = GarmentNet(cfg.backbone, pretrained=True, drop_path_rate=cfg.drop_path).to(memory_format=torch.channels_last)
    early, late = split_backbone(model, cfg.frozen)
    for p in early.parameters():
        p.requires_grad_(False)
    plain, plain_sketch, photo, drawing = _views(cfg)
    teacher = load_teacher(cfg.teacher) if cfg.teacher else None
    T: dict[str, torch.Tensor] = {}  # the teacher's logits on the cached real photos and drawings
    dd = f"_doodle{cfg.doodle:g}" if cfg.doodle else ""
    C = {"real": cached_features("real_photo", early, train_items, cfg.views, photo, cfg, teacher),
         "real_sk": cached_features("real_sketch" + dd, early, train_items, cfg.sketch_views, drawing, cfg, teacher),
         "st": cached_features("studio_photo", early, studio_train, cfg.sketch_views, photo, cfg),
         "st_sk": cached_features("studio_sketch" + dd, early, studio_train, cfg.sketch_views, drawing, cfg),
         "val_dd": cached_features("val_doodle", early, val_dd, 1, plain_sketch, cfg),
         "val": cached_features("val_photo", early, val_items, 1, plain, cfg),
         "val_sk": cached_features("val_sketch", early, val_sk, 1, plain_sketch, cfg),
         "stv": cached_features("studio_val_photo", early, studio_val, 1, plain, cfg),
         "stv_sk": cached_features("studio_val_sketch", early, studio_val, 1, plain_sketch, cfg)}
    if teacher:  # for these two, cached_features returned (features, the teacher's outputs)
        for k in ("real", "real_sk"):
            C[k], T[k] = C[k]
    L = {"real": label_arrays(train_items), "st": label_arrays(studio_train), "st_sk": label_arrays(studio_train, colour=False)}
    if street_train:
        C["street"] = cached_features("street_photo", early, street_train, cfg.views, photo, cfg)
        C["street_val"] = cached_features("street_val_photo", early, street_val, 1, plain, cfg)
        L["street"] = label_arrays(street_train, colour=False)

    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    late_ids = {id(p) for p in late.parameters()}
    opt = torch.optim.AdamW([{"params": [p for p in trainable if id(p) in late_ids], "lr": cfg.lr},
                             {"params": [p for p in trainable if id(p) not in late_ids], "lr": cfg.lr * 5}],
                            weight_decay=cfg.weight_decay)
    steps = len(train_items) // cfg.batch
    total = steps * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (steps / 2)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    ema = EMA(model, cfg.ema)
    ckpt = work / "last.pt"
    saved_config = {**asdict(cfg), "data_fingerprint": data_fingerprint(cfg.data)}  # once: it walks every file
    history, start, best, bad, prior_s = [], 0, -1.0, 0, 0.0
    if ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        check_resumable(cfg, st.get("config", {}), ckpt)
        model.load_state_dict(st["model"])
        ema.model.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        history, start, best, bad = st["history"], st["epoch"], st["best"], st["bad"]
        prior_s = st.get("seconds", 0.0)
        log.info("resuming after epoch %d", start)
    t_start -= prior_s  # training time counts every session of a resumed run

    def run(m, feats):  # late stages + heads on cached features
        return m.heads(m_late(m)(feats.float().contiguous(memory_format=torch.channels_last)))

    def m_late(m):
        return split_backbone(m, cfg.frozen)[1]

    def sample(feats, idx, rng_t):
        """A random cached view of each item, randomly flipped; also which view (for the teacher's outputs)."""
        v = torch.randint(feats.shape[1], (len(idx),), generator=rng_t)
        x = feats[idx, v]
        flip = torch.rand(len(idx), generator=rng_t) < 0.5
        x[flip] = x[flip].flip(-1)  # feature-map flip: cheap extra augmentation
        return x, v

    def pick(lbl, idx):
        return {"category": lbl["category"][idx], "colour": lbl["colour"][idx], "coarse": lbl["coarse"][idx],
                "attributes": {a: t[idx] for a, t in lbl["attributes"].items()}}

    def cat_labels(*ls):
        return {**{k: torch.cat([x[k] for x in ls]) for k in ("category", "colour", "coarse")},
                "attributes": {a: torch.cat([x["attributes"][a] for x in ls]) for a in vocab.ATTRIBUTES}}

    @torch.no_grad()
    def evaluate(m) -> dict:
        m.eval()
        o = {k: run(m, C[k][:, 0]) for k in ("val", "val_sk", "stv", "stv_sk")}
        y = torch.tensor([it.category for it in val_items])
        ys = label_arrays(studio_val)
        rec = {"val_category_top1": float((o["val"]["category"].argmax(1) == y).float().mean()),
               "val_loss": float(F.cross_entropy(o["val"]["category"], y)),
               "val_xdog_sketch_category_top1": float((o["val_sk"]["category"].argmax(1) == y).float().mean()),
               "val_doodle_coarse_top1": coarse_top1(run(m, C["val_dd"][:, 0])["category"], val_dd),
               "studio_category_top1": float((o["stv"]["category"].argmax(1) == ys["category"]).float().mean()),
               "studio_sketch_category_top1": float((o["stv_sk"]["category"].argmax(1) == ys["category"]).float().mean()),
               "studio_colour_head_top1": float((o["stv"]["colour"].argmax(1) == ys["colour"]).float().mean())}
        for a, t in ys["attributes"].items():
            mk = t >= 0
            rec[f"studio_attr_{a}_top1"] = float((o["stv"][f"attr_{a}"][mk].argmax(1) == t[mk]).float().mean())
        rec.update(sbir_metrics(o["val_sk"]["embedding"], o["val"]["embedding"], "val_xdog_sbir"))
        rec.update(sbir_metrics(o["stv_sk"]["embedding"], o["stv"]["embedding"], "studio_sbir"))
        if street_val:
            rec.update(street_metrics(run(m, C["street_val"][:, 0])["category"], street_val))
        return {k: round(v, 4) for k, v in rec.items()}

    n_sk = cfg.batch // 2
    for epoch in range(start, cfg.epochs):
        if bad >= cfg.patience:
            log.info("early stop: no validation improvement for %d epochs", bad)
            break
        model.train()
        early.eval()
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        order = torch.randperm(len(train_items), generator=g)
        t0, run_l = time.time(), {}
        for s in tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", mininterval=20):
            ri = order[s * cfg.batch:(s + 1) * cfg.batch]
            si = torch.randint(len(studio_train), (cfg.studio_batch,), generator=g)
            wi = (torch.randint(len(street_train), (cfg.street_batch,), generator=g) if street_train
                  else torch.zeros(0, dtype=torch.long))
            (xr, vr), (xs, _), (xk, vk), (xks, _) = (sample(C["real"], ri, g), sample(C["st"], si, g),
                                                     sample(C["real_sk"], ri[:n_sk], g), sample(C["st_sk"], si, g))
            x = torch.cat([xr, xs, xk, xks, *([sample(C["street"], wi, g)[0]] if len(wi) else [])])
            lbl = cat_labels(pick(L["real"], ri), pick(L["st"], si), pick(L["real"], ri[:n_sk]), pick(L["st_sk"], si),
                             *([pick(L["street"], wi)] if len(wi) else []))
            out = run(model, x)
            loss, parts = multitask_loss(out, lbl, cfg.label_smoothing)
            e = out["embedding"]
            nb, ns = len(ri), len(si)
            photos = torch.cat([e[:n_sk], e[nb:nb + ns]])
            drawings = e[nb + ns:nb + ns + n_sk + ns]
            parts["infonce"] = float((nce := info_nce(drawings, photos)).detach())
            loss = loss + cfg.infonce_weight * nce
            if teacher:
                student = torch.cat([out["category"][:nb], out["category"][nb + ns:nb + ns + n_sk]])
                kd = distill_loss(student, torch.cat([T["real"][ri, vr], T["real_sk"][ri[:n_sk], vk]]))
                parts["distill"] = float(kd.detach())
                loss = loss + cfg.distill * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            opt.step()
            sched.step()
            ema.update(model)
            for k, v in parts.items():
                run_l[k] = run_l.get(k, 0.0) + v
        rec = {"epoch": epoch + 1, "train_s": round(time.time() - t0, 1),
               **{f"train_{k}": round(v / steps, 4) for k, v in run_l.items()}, **evaluate(ema.model)}
        history.append(rec)
        score = rec["val_category_top1"]
        best, bad = (score, 0) if score > best else (best, bad + 1)
        log.info("epoch %d: %s", epoch + 1, json.dumps(rec))
        _save({"model": model.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(),
               "sched": sched.state_dict(), "history": history, "epoch": epoch + 1, "best": best, "bad": bad,
               "config": saved_config, "seconds": time.time() - t_start}, ckpt)
    from .report import write_artifacts
    final = ema.model.eval()
    return write_artifacts(cfg, final, {"train": history}, val_items, studio_val=studio_val,
                           val_sketches=val_sk, street_val=street_val, train_seconds=round(time.time() - t_start, 1),
                           train_photos={"n": len(train_items), "classes": len({it.category for it in train_items})})


def coarse_pred(logits: torch.Tensor) -> torch.Tensor:
    """The coarse class with the most summed fine probability."""
    return (logits.softmax(1) @ GROUPS.T).argmax(1)


def coarse_top1(logits: torch.Tensor, items: list[D.Item]) -> float:
    """Top-1 at the coarse level (a doodle of a shirt called a t-shirt is right: both are tops)."""
    true = GROUPS.argmax(0)[torch.tensor([it.category for it in items])]
    return float((coarse_pred(logits) == true).float().mean())


def street_metrics(logits: torch.Tensor, items: list[D.Item]) -> dict:
    """Coarse top-1 on street crops (every item), fine top-1 where the fine label is known."""
    coarse_true = torch.tensor([it.coarse for it in items])
    fine = torch.tensor([it.category for it in items])
    known = fine >= 0
    return {"street_coarse_top1": float((coarse_pred(logits) == coarse_true).float().mean()),
            "street_fine_top1": float((logits[known].argmax(1) == fine[known]).float().mean())}


def checkpoint_dict(model: GarmentNet, cfg: TrainConfig, meta: dict) -> dict:
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    return {"format": CHECKPOINT_FORMAT, "backbone": model.backbone_name, "embed_dim": model.embed[-1].out_features,
            "size": cfg.infer_size, "train_size": cfg.size, "mean": D._MEAN.tolist(), "std": D._STD.tolist(),
            "categories": list(vocab.FINE_CATEGORIES), "colours": list(vocab.COLOURS),
            "attributes": {a.name: list(a.values) for a in vocab.ATTRIBUTES.values()},
            "state_dict": sd, "meta": meta}


def averaged_network(cks: list[dict]) -> GarmentNet:
    """The uniform average of checkpoints' networks. Heads added to a trained network (sketch, worn) learnt its
    features, not the average's: they are left out, to be trained again on it."""
    model = GarmentNet(cks[0]["backbone"], pretrained=False, embed_dim=cks[0]["embed_dim"])
    base = model.state_dict()
    heads = sorted({k.split(".")[0] for ck in cks for k in ck["state_dict"] if k not in base})
    if heads:
        log.warning("the %s head(s) are left out of the average: train them again on it (--sketch-head, --worn-head)",
                    ", ".join(heads))
    model.load_state_dict({k: (sum(ck["state_dict"][k].float() for ck in cks) / len(cks)).to(v.dtype)
                           if v.is_floating_point() else v for k, v in cks[0]["state_dict"].items() if k in base})
    return model


def average(cfg: TrainConfig, paths: list[str]) -> Path:
    """A uniform weight average ("model soup") of classifiers trained from the same ImageNet start
    (e.g. with and without doodles), evaluated and written into cfg.out like a trained model."""
    from .report import write_artifacts
    from .studio_data import load_studio, real_sketch_items
    cks = [read_checkpoint(p) for p in paths]
    if len({(ck["backbone"], ck["embed_dim"]) for ck in cks}) != 1:
        raise UserError(f"--average needs classifier weights of one backbone and embedding size: {', '.join(paths)}")
    model = averaged_network(cks)
    cfg = replace(cfg, backbone=cks[0]["backbone"], size=cks[0]["train_size"], infer_size=cks[0]["size"])
    val_items = _real_items(cfg, "validation")
    _, studio_val, _ = load_studio(cfg)
    return write_artifacts(cfg, model.eval(), {}, val_items, studio_val=studio_val,
                           val_sketches=real_sketch_items(val_items))
