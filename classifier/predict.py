"""The one inference API (server, index builder, evaluators): load once, predict batches."""
from __future__ import annotations

import logging

import numpy as np
import torch

from sketchshop import vocab
from sketchshop.accel import pool
from sketchshop.errors import ImageError, UserError
from sketchshop.images import as_drawing, convert, load_image, to_array
from sketchshop.registry import weights_path

from . import data as D
from .colour import combine_colour, hint_colour, measured_colour
from .colour_model import load_colour_model
from .model import GarmentNet, read_checkpoint

log = logging.getLogger(__name__)
# "colourised": the colouriser's image of a drawing, read as a photo but run in int8 where that pays
KINDS = ("photo", "sketch", "colourised")
# the int8 copy must keep, against float on 32 studio renders and 32 drawings, this share of the
# category heads' answers and this mean embedding cosine (measured 0.995 / 0.9994: see the card)
INT8_AGREEMENT, INT8_COSINE = 0.95, 0.99


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _as_image(x):
    """PIL image in any mode, path or bytes -> RGB PIL (ImageError for anything unreadable)."""
    from PIL import Image
    if isinstance(x, Image.Image):
        if min(x.size) < 1:
            raise ImageError(f"empty image {x.size}")
        return convert(x, "RGB")
    return load_image(x)


def _int8_copy(fast, size: int):
    """An int8 copy of the network for the colouriser's images in a sketch search, calibrated and checked
    on studio renders and drawings generated here. Not for photos (0.3-0.6 points of category top-1 on
    the validation photos) nor drawings (sketch retrieval lost 1-3 queries in 341): the classifier card,
    "The colouriser's images in int8"."""
    from sketchshop.accel import int8_module
    from sketchshop.studio import render_product

    def feeds(seed: int, n: int) -> list[dict]:
        products = [render_product(seed, i, size=size) for i in range(n)]
        images = [p.image for p in products] + [D.frame_drawing(as_drawing(p.sketch)) for p in products]
        return [{"image": D.preprocess(im, size).numpy()[None]} for im in images]

    def close(ref: list[dict], got: list[dict]) -> dict:
        heads = [k for k in ref[0] if k.startswith("category")]
        agree = float(np.mean([r[k].argmax() == g[k].argmax() for r, g in zip(ref, got) for k in heads]))
        a, b = (np.concatenate([o["embedding"] for o in outs]) for outs in (ref, got))
        cosine = float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))
        ok = agree >= INT8_AGREEMENT and cosine >= INT8_COSINE
        return {"category_agreement": round(agree, 4), "embedding_cosine": round(cosine, 4),
                "why_not": None if ok else (f"int8 keeps {agree:.3f} of the category answers (want {INT8_AGREEMENT}) "
                                            f"and embedding cosine {cosine:.4f} (want {INT8_COSINE})")}

    return int8_module(fast, lambda: feeds(1, 64), lambda: feeds(2, 32), close)


class Classifier:
    """Category, colour, attributes and a search embedding for garment crops, photos or sketches."""

    def __init__(self, model: GarmentNet, size: int = D.SIZE, colour_mode: str = "combined", meta: dict | None = None,
                 fast=None, fast_int8=None, colour_model=None):
        self.model = model.eval()
        self.fast = fast  # the same network in ONNX Runtime (sketchshop.accel), or None: eager PyTorch
        self.fast_int8 = fast_int8 or fast  # for the colouriser's images: int8 where it pays
        self.size = size
        self.colour_mode = colour_mode  # "head", "measured" or "combined" (chosen on studio data, see card)
        self.colour_model = colour_model  # (W, b) of "combined" fitted on labelled photos, or None: the hand-set rule
        self.meta = meta or {}
        # Label smoothing leaves the category head underconfident; dividing its logits by a temperature
        # fitted on validation photos makes category_p a calibrated probability (card: "Calibration").
        self.temperature = float(self.meta.get("category_temperature", 1.0))
        self.sketch_temperature = float(self.meta.get("sketch_temperature", 1.0))
        self.embed_dim = model.embed[-1].out_features

    @classmethod
    def load(cls, path=None) -> "Classifier":
        """Load the shipped weights (or `path`); a missing, corrupt or foreign file is a UserError."""
        p = weights_path("classifier", path)
        ck = read_checkpoint(p)
        try:
            model = GarmentNet.from_checkpoint(ck)
        except (RuntimeError, KeyError) as e:
            raise UserError(f"{p}: weights do not fit the {ck['backbone']} model ({str(e)[:200]})") from None
        model = model.to(memory_format=torch.channels_last).eval()
        meta, size = ck.get("meta", {}), ck.get("size", D.SIZE)
        from sketchshop.accel import onnx_module
        from sketchshop.registry import sha256
        sha = sha256(p)  # names the ONNX copy and checks the colour model's (17 MB: hashed once)
        fast = onnx_module(model, (torch.rand(2, 3, size, size),), ("image",), model.output_names,
                           key=f"classifier-{sha[:16]}")
        return cls(model, size, meta.get("colour_mode", "combined"), meta, fast, fast and _int8_copy(fast, size),
                   load_colour_model(p, sha))

    def preprocess(self, image) -> torch.Tensor:
        """THE preprocessing (index time = query time)."""
        return D.preprocess(_as_image(image), self.size)

    @torch.no_grad()
    def _forward(self, ims: list, batch: int = 4, measure: list | None = None,
                 int8: list | None = None) -> tuple[dict, list]:
        """The network's outputs for `ims`, and the measured colour of each image i with `measure[i]`
        (True, or the garment's box in it; see `colour.measured_colour`), else None. Images with `int8[i]`
        run in `fast_int8`, in batches of their own.

        Preprocessing runs on a thread pool while the network runs on earlier chunks; small chunks
        because batch 3-4 ran fastest per image on this 2-core CPU (8: +3 %, 16: +5 %). A single
        image is preprocessed here while its colour is measured on the pool, through the network's run.
        Both read one copy of the image's pixels (copying them out of PIL took up to 0.8 ms)."""
        measure = measure or [None] * len(ims)
        int8 = int8 or [False] * len(ims)
        order = sorted(range(len(ims)), key=lambda i: not int8[i])  # the int8 group first, each in order
        single = len(ims) == 1

        def prep(i):
            a, m = to_array(ims[i]), measure[i]
            box = None if m is True else m
            if single:  # the colour starts first, on the other core, while this one preprocesses
                colour = None if m is None else pool().submit(measured_colour, a, box=box)
                return D.preprocess(a, self.size), colour
            return D.preprocess(a, self.size), None if m is None else measured_colour(a, box=box)

        done = map(prep, order) if single else pool().map(prep, order)
        outs: dict[str, list] = {}
        colours = []
        groups = [j for j in order if int8[j]], [j for j in order if not int8[j]]
        chunks = [g[i:i + batch] for g in groups for i in range(0, len(g), batch)]
        for chunk in chunks:
            items = [next(done) for _ in chunk]
            colours += [c for _, c in items]
            # numpy, not torch.stack: torch's OpenMP threads spin for a while after a parallel op,
            # and took a core from ONNX Runtime's run right after it (network 8.7 -> 11.5 ms)
            x = torch.from_numpy(np.stack([x.numpy() for x, _ in items]))
            fast = self.fast_int8 if int8[chunk[0]] else self.fast
            out = fast(x) if fast else self.model(x.contiguous(memory_format=torch.channels_last))
            for k, v in out.items():
                outs.setdefault(k, []).append(v)
        back = torch.from_numpy(np.argsort(order))  # to the callers' order
        colours = [colours[i] for i in back.tolist()]
        return ({k: torch.cat(v)[back] for k, v in outs.items()},
                [c.result() if single and c else c for c in colours])

    def embed(self, images: list, kind: str = "photo") -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings; photos and sketches share one space."""
        self._check_kind(kind)
        if not images:
            return np.zeros((0, self.embed_dim), np.float32)
        ims = self._inputs(images, [kind] * len(images))
        return self._forward(ims, int8=[kind == "colourised"] * len(ims))[0]["embedding"].numpy().astype(np.float32)

    def predict(self, images: list, kind: str | list[str] = "photo", hints: list | None = None, topk: int = 3,
                priors: list | None = None, boxes: list | None = None) -> list[dict]:
        """Per image: category (+p, top-k), colour (+p), applicable attributes (+p), embedding.

        `kind`: one for all images, or one per image (a sketch and its colourised image in one batch);
        drawings ("sketch") take the sketch head's category when the model has one, photos the worn head's;
        "colourised" (the colouriser's image of a drawing) is read as a photo but runs in int8 where that pays.
        `hints`: per image None or an RGBA hint layer. An image with hints takes its colour from them
        (a sketch, or the colouriser's image of it), a photo without them its measured colour, and a
        sketch without them has none.
        `priors`: per image None or {coarse category: p} from another model (the detector); the
        category distribution is multiplied by it and renormalised (a product of experts).
        `boxes`: per image None or the garment's (x1, y1, x2, y2) in it (a detected garment cropped with
        context); a photo's colour is measured in that box (`colour.measured_colour`).
        """
        kinds = list(kind) if isinstance(kind, (list, tuple)) else [kind] * len(images)
        for name, extra in (("kinds", kinds), ("hint layers", hints), ("priors", priors), ("boxes", boxes)):
            if extra is not None and len(extra) != len(images):
                raise UserError(f"{len(extra)} {name} for {len(images)} images")
        for k in kinds:
            self._check_kind(k)
        if not images:
            return []
        ims = self._inputs(images, kinds)
        hints = hints or [None] * len(ims)
        boxes = boxes or [None] * len(ims)
        hinted = [h is not None or k == "sketch" for k, h in zip(kinds, hints)]  # colour from hints, or none
        tasks: dict = {}
        for h, from_hints in zip(hints, hinted):
            if from_hints and h is not None and id(h) not in tasks:  # a layer shared by several images is read once
                tasks[id(h)] = pool().submit(hint_colour, h)
        measure = [None if from_hints or self.colour_mode == "head" else (box or True)
                   for from_hints, box in zip(hinted, boxes)]
        out, colours = self._forward(ims, measure=measure, int8=[k == "colourised" for k in kinds])
        colours = [tasks[id(h)].result() if from_hints and h is not None else c
                   for h, from_hints, c in zip(hints, hinted, colours)]
        o = {k: v.numpy() for k, v in out.items()}  # numpy from here: a tenth of torch's per-call cost
        drawn = np.array([k == "sketch" for k in kinds])
        pc = _softmax(o["category"] / self.temperature)
        if "category_sketch" in o and drawn.any():  # drawings have their own category head (classifier/sketch_head.py)
            pc[drawn] = _softmax(o["category_sketch"][drawn] / self.sketch_temperature)
        if "category_worn" in o and not drawn.all():  # and photos one that also reads worn garments (worn_head.py)
            pc[~drawn] = np.exp(o["category_worn"][~drawn])
        for i, prior in enumerate(priors or []):
            if prior:
                q = pc[i] * np.array([prior.get(vocab.FINE_TO_COARSE[c], 0.0) for c in vocab.FINE_CATEGORIES])
                if q.sum() > 0:
                    pc[i] = q / q.sum()
        pcol = _softmax(o["colour"])
        pat = {a: _softmax(o[f"attr_{a}"]) for a in vocab.ATTRIBUTES}
        emb = o["embedding"].astype(np.float32)
        measured = [i for i, h in enumerate(hinted) if not h and colours[i] is not None]
        rgbs = [colours[i][0] for i in measured]
        combined = dict(zip(measured, combine_colour(pcol[measured], rgbs, self.colour_model)
                            if measured and self.colour_mode == "combined" else []))
        res = []
        for i in range(len(ims)):
            j = np.argsort(-pc[i], kind="stable")[:topk]
            v = pc[i][j]
            cat = vocab.FINE_CATEGORIES[int(j[0])]
            colour, colour_p = self._colour(pcol[i], hinted[i], colours[i], combined.get(i))
            attrs = {}
            for a in vocab.attributes_for(cat):
                q = pat[a][i]
                k = int(q.argmax())
                attrs[a] = {"value": vocab.ATTRIBUTES[a].values[k], "p": round(float(q[k]), 4)}
            res.append({"category": cat, "category_p": round(float(v[0]), 4),
                        "topk": [(vocab.FINE_CATEGORIES[int(b)], round(float(a_), 4)) for a_, b in zip(v, j)],
                        "colour": colour, "colour_p": colour_p, "attributes": attrs, "embedding": emb[i]})
        return res

    def colour_evidence(self, photos: list) -> tuple[np.ndarray, np.ndarray]:
        """(the colour head's probabilities N x C, the measured colours N x 3) of photos: what "combined" reads."""
        out, colours = self._forward(self._inputs(photos, ["photo"] * len(photos)), measure=[True] * len(photos))
        return _softmax(out["colour"].numpy()), np.array([c[0] for c in colours])

    @staticmethod
    def _inputs(images: list, kinds: list[str]) -> list:
        """RGB images; drawings dark on light (`images.as_drawing`) and framed to their strokes (`data.frame_drawing`)."""
        ims = [_as_image(im) for im in images]
        return [D.frame_drawing(as_drawing(im)) if k == "sketch" else im for im, k in zip(ims, kinds)]

    def _colour(self, p_head: np.ndarray, hinted: bool, found, combined=None) -> tuple[str | None, float]:
        """`found`: hint_colour() of the hints, or measured_colour() of a photo (None: not measured);
        `combined`: combine_colour() of the head and that measurement (done for the batch at once)."""
        if hinted:
            if found is None:  # an uncoloured line drawing has no colour to report
                return None, 0.0
            return found[0], round(float(found[1]), 4)
        k = int(p_head.argmax())
        head = (vocab.COLOURS[k], float(p_head[k]))
        if self.colour_mode == "head":
            return head[0], round(head[1], 4)
        rgb, share = found
        if self.colour_mode == "measured":
            return vocab.name_colour(rgb), round(share, 4)
        k = int(combined.argmax())
        return vocab.COLOURS[k], round(float(combined[k]), 4)

    @staticmethod
    def _check_kind(kind):
        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
