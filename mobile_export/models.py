"""The three exportable models: how each is loaded, wrapped, fed, and judged.

A Target knows one model: it loads the shipped weights (or the user's), wraps the torch module
so the exported graph takes image tensors and returns named outputs, builds the parity and
calibration inputs, and compares outputs. The generic pipeline (export.py) does the rest.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.registry import sha256, weights_path

from . import parity, samples
from .runtime import as_numpy

log = logging.getLogger(__name__)


def _torch_load(path: Path, what: str) -> dict:
    """torch.load a sketchshop checkpoint dict; any failure is the user's file, not a traceback."""
    import torch
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt zip, truncated pickle, not a torch file at all
        raise UserError(f"{path}: not a readable {what} checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'})") from None
    if not isinstance(ck, dict) or "state_dict" not in ck:
        raise UserError(f"{path}: not a sketchshop {what} checkpoint (no state_dict)")
    return ck


def _load_state(module, sd, path: Path, what: str):
    try:
        module.load_state_dict(sd)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"{path}: {what} weights do not fit the architecture ({str(e).splitlines()[0][:200]})") from None
    return module.eval()


@dataclass
class Case:
    """One parity input: the exported model's feed, and what the reference path gets."""
    feed: dict                 # input name -> numpy array, exactly as the manifest states
    ref_args: tuple            # arguments of Target.reference
    meta: dict = field(default_factory=dict)


class Target:
    name: str = ""
    description: str = ""
    input_names: tuple = ()
    output_names: tuple = ()
    quant_ops: tuple = ("Conv", "Gemm", "MatMul")

    def __init__(self, weights=None, *, fresh: bool = False, data=None):
        self.data = data
        self.fresh = fresh
        self.source: dict = {}
        self.load(weights)

    # -- loading -------------------------------------------------------------------------
    def _weights(self, weights) -> Path:
        return weights_path(self.name, weights)

    def _source(self, path: Path, extra: dict | None = None) -> dict:
        digest = sha256(path)
        return {"weights": str(path), "sha256": digest, "version": f"{self.name}-{digest[:12]}", **(extra or {})}

    def load(self, weights) -> None:
        raise NotImplementedError

    # -- graph -------------------------------------------------------------------------------
    def wrapper(self):
        """A torch module taking the manifest's inputs and returning outputs in `output_names` order."""
        raise NotImplementedError

    def example(self) -> tuple:
        raise NotImplementedError

    def inputs_spec(self) -> list[dict]:
        raise NotImplementedError

    def outputs_spec(self) -> list[dict]:
        raise NotImplementedError

    def labels(self) -> dict:
        return {}

    # -- data and checks ----------------------------------------------------------------------
    def cases(self, purpose: str) -> tuple[list[Case], str]:
        raise NotImplementedError

    def reference(self, *args) -> dict:
        """Outputs of the original PyTorch model through the package's own preprocessing."""
        raise NotImplementedError

    def compare_fp32(self, refs: list[dict], gots: list[dict]) -> dict:
        raise NotImplementedError

    def quant_strategies(self, onnx_path: Path) -> list[dict]:
        """int8 recipes to try in order: name, op_types to quantise, node names to keep in float."""
        return [{"name": f"quantised ops {list(self.quant_ops)}", "op_types": self.quant_ops}]

    def compare_int8(self, fp32: list[dict], int8: list[dict], cases: list[Case], paths=()) -> dict:
        """int8 outputs vs the fp32 export's; `paths` = (fp32 file, int8 file) for checks that run files."""
        raise NotImplementedError


# =========================================================================== classifier

class ClassifierTarget(Target):
    name = "classifier"
    description = "garment category, colour and attributes, plus the sketch/photo search embedding"
    input_names = ("image",)

    @property
    def output_names(self):
        """The network's outputs (its optional heads' included), the embedding last: see compare_*."""
        return (*(n for n in self.net.output_names if n != "embedding"), "embedding")

    def load(self, weights):
        import torch
        from classifier.model import GarmentNet
        if self.fresh:
            self.net, self.size, self.colour_mode = GarmentNet(pretrained=False).eval(), 224, "head"
            self.temperature, self.colour_model = 1.0, None
            self.source = {"weights": None, "version": "untrained", "note": "freshly constructed architecture"}
        else:
            from classifier import Classifier
            path = self._weights(weights)
            # the package's own loader (format, vocabulary and shape checks); the first shipped file
            # (sha 180de755) recorded torch.__version__ as a TorchVersion, which weights_only rejects
            with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
                clf = Classifier.load(path)
            self.net, self.size, self.colour_mode = clf.model, int(clf.size), clf.colour_mode
            self.temperature, self.sketch_temperature = clf.temperature, clf.sketch_temperature
            self.colour_model = clf.colour_model
            self.source = self._source(path, {"backbone": self.net.backbone_name,
                                              "trained": {k: clf.meta[k] for k in ("trained", "train_seconds", "val_category_top1")
                                                          if k in clf.meta}})
        # the data module's normalisation constants are THE preprocessing's (classifier.data.to_tensor)
        from classifier.data import _MEAN, _STD
        self.mean = tuple(float(v) / 255 for v in _MEAN)
        self.std = tuple(float(v) / 255 for v in _STD)
        self.net = self.net.float().to(memory_format=torch.contiguous_format).eval()

    def wrapper(self):
        import torch
        from torch import nn
        names = self.output_names

        class ClassifierExport(nn.Module):
            """[0, 1] RGB in, normalisation inside, every head's logits and the embedding out."""

            def __init__(self, net, mean, std):
                super().__init__()
                self.net = net
                self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
                self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

            def forward(self, image):
                out = self.net((image - self.mean) / self.std)
                return tuple(out[k] for k in names)

        return ClassifierExport(self.net, self.mean, self.std).eval()

    def example(self):
        import torch
        return (torch.rand(1, 3, self.size, self.size),)

    def inputs_spec(self):
        return [{"name": "image", "shape": [1, 3, self.size, self.size], "dtype": "float32", "layout": "NCHW",
                 "colour_order": "RGB", "value_range": [0.0, 1.0],
                 "resize": (f"letterbox to {self.size}x{self.size}: scale so the longer side is {self.size} "
                            "(bilinear), keep the aspect ratio, centre on a square canvas filled with the median "
                            "RGB of the image's outer 4% border (classifier.data.letterbox); apply EXIF rotation "
                            "first; for a detected garment, letterbox its box widened by 20% of its size on each side "
                            "(detector.infer.CLASSIFY_MARGIN)"),
                 "normalisation": ("pixel / 255 only; the model subtracts mean and divides by std itself "
                                   f"(mean {list(self.mean)}, std {list(self.std)}, ImageNet)")}]

    def outputs_spec(self):
        spec = [{"name": "category", "shape": [1, len(vocab.FINE_CATEGORIES)], "dtype": "float32",
                 "meaning": (f"logits over labels.category; softmax(logits / {self.temperature}) gives calibrated "
                             "probabilities (the server's category_p)")},
                {"name": "colour", "shape": [1, len(vocab.COLOURS)], "dtype": "float32",
                 "meaning": ("logits over labels.colour (the garment's main colour). The server reports "
                             f"colour_mode={self.colour_mode!r}: 'combined' = softmax(x W + b) with x the 26 "
                             "values [-dE / 10 for each colour, log softmax(head) / 5], dE the CIEDE2000 of the "
                             "measured dominant colour to each colour's nearest prototype "
                             "(classifier.colour.combine_colour), and W, b `combined_colour` here (fitted on "
                             "labelled photos) or, when that is null, the hand-set rule "
                             "softmax((0.25 log softmax(head) - dE / 3) / 2); for drawings the "
                             "colour comes from the user's hints, not this head"),
                 "combined_colour": None if self.colour_model is None else
                 {"W": self.colour_model[0].round(6).tolist(), "b": self.colour_model[1].round(6).tolist()}}]
        for a in vocab.ATTRIBUTES.values():
            spec.append({"name": f"attr_{a.name}", "shape": [1, len(a.values)], "dtype": "float32",
                         "meaning": f"logits over labels.attributes.{a.name}; meaningful only for categories "
                                    f"{list(a.applies_to)}"})
        if "category_sketch" in self.output_names:
            spec.append({"name": "category_sketch", "shape": [1, len(vocab.FINE_CATEGORIES)], "dtype": "float32",
                         "meaning": ("logits over labels.category for a drawing (the user's sketch): use them instead "
                                     f"of `category` for drawings; softmax(logits / {self.sketch_temperature}) gives "
                                     "calibrated probabilities")})
        if "category_worn" in self.output_names:
            spec.append({"name": "category_worn", "shape": [1, len(vocab.FINE_CATEGORIES)], "dtype": "float32",
                         "meaning": ("log-probabilities over labels.category for a photo (the server's category of "
                                     "photos and detected garments): `category` with the coarse group of a worn "
                                     "garment (a person's clothes, as the detector cuts them out) read by a head "
                                     "trained on street photos; exp() gives the probabilities, no temperature")})
        spec.append({"name": "embedding", "shape": [1, int(self.net.embed[-1].out_features)], "dtype": "float32",
                     "meaning": "L2-normalised search embedding shared by photos and sketches; rank catalogue "
                                "items by dot product (the server's index uses the same space)"})
        return spec

    def labels(self):
        return {"category": list(vocab.FINE_CATEGORIES), "colour": list(vocab.COLOURS),
                "attributes": {a.name: list(a.values) for a in vocab.ATTRIBUTES.values()},
                "coarse_of_category": dict(vocab.FINE_TO_COARSE)}

    def cases(self, purpose):
        from classifier.data import letterbox, preprocess
        imgs = samples.classifier_images(purpose, self.data)
        out = []
        for im in imgs.images:
            x = np.asarray(letterbox(im, self.size), np.float32).transpose(2, 0, 1)[None] / 255.0
            out.append(Case({"image": np.ascontiguousarray(x)}, (preprocess(im, self.size),)))
        return out, imgs.describe()

    def reference(self, x):
        import torch
        with torch.no_grad():
            out = self.net(x[None])
        return {k: as_numpy(out[k]) for k in self.output_names}

    def compare_fp32(self, refs, gots):
        r = {"outputs": [], "failures": []}
        for k in self.output_names:
            c = parity.close(np.concatenate([x[k] for x in refs]), np.concatenate([x[k] for x in gots]), k)
            r["outputs"].append({kk: v for kk, v in c.items() if kk != "failures"})
            r["failures"] += c["failures"]
        for k in self.output_names[:-1]:
            agree = parity.top1_agreement(np.concatenate([x[k] for x in refs]), np.concatenate([x[k] for x in gots]))
            r[f"top1_agreement_{k}"] = agree
            if agree < parity.FP32_TOP1:
                r["failures"].append(f"{k}: top-1 agreement {agree:.4f} < {parity.FP32_TOP1}")
        r["n"] = len(refs)
        return r

    def quant_strategies(self, onnx_path):
        """Measured on the parity set (see docs/android.md): everything int8 flips 1 in 6 categories
        (embedding cosine 0.88). Most of the error comes from the stem conv (it sees the normalised
        image) and the depthwise convs, whose activations U8S8 saturates on AVX2-only CPUs; U8U8
        weights with those convs' activations in float (their weights int8) keep it under 5 MB. Smallest first."""
        import onnx
        convs = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]
        stem = [c for c in convs if "conv_stem" in c]
        dw = [c for c in convs if "conv_dw" in c]
        early_dw = [c for c in dw if any(f"/blocks.{i}/" in c for i in range(5))]
        late_dw = [c for c in dw if c not in early_dw]
        ops = self.quant_ops
        return [{"name": "U8U8; stem and depthwise convs with float activations, depthwise weights of stages 5-6 int8",
                 "op_types": ops, "weight_type": "uint8", "exclude": stem + dw, "weight_only": late_dw},
                {"name": "U8U8; stem and depthwise convs of stages 0-4 in float", "op_types": ops,
                 "weight_type": "uint8", "exclude": stem + early_dw},
                {"name": "U8U8; stem and every depthwise conv in float", "op_types": ops,
                 "weight_type": "uint8", "exclude": stem + dw}]

    def compare_int8(self, fp32, int8, cases, paths=()):
        r = {"n": len(fp32), "failures": []}
        for k in self.output_names[:-1]:
            r[f"top1_agreement_{k}"] = parity.top1_agreement(np.concatenate([x[k] for x in fp32]),
                                                             np.concatenate([x[k] for x in int8]))
        cos = parity.cosine(np.concatenate([x["embedding"] for x in fp32]), np.concatenate([x["embedding"] for x in int8]))
        r.update(embedding_cosine_mean=float(cos.mean()), embedding_cosine_min=float(cos.min()))
        if r["top1_agreement_category"] < parity.INT8_TOP1:
            r["failures"].append(f"category top-1 agreement {r['top1_agreement_category']:.4f} < {parity.INT8_TOP1}")
        if r["embedding_cosine_mean"] < parity.INT8_COSINE:
            r["failures"].append(f"embedding cosine mean {r['embedding_cosine_mean']:.4f} < {parity.INT8_COSINE}")
        return r


# =========================================================================== colouriser

class ColorizerTarget(Target):
    name = "colorizer"
    description = "colours a garment sketch from the user's hint dots (pix2pix U-Net generator)"
    input_names = ("sketch_hints", "category")
    output_names = ("rgb",)
    quant_ops = ("Conv",)

    def load(self, weights):
        if self.fresh:
            from colorizer.model import UNetGenerator
            self.net, self.size = UNetGenerator().eval(), 256
            self.source = {"weights": None, "version": "untrained", "note": "freshly constructed architecture"}
        else:
            from colorizer import Colorizer
            path = self._weights(weights)
            col = Colorizer.load(path)  # the package's own loader: format and shape checks
            self.net, self.size = col.gen, int(col.size)
            self.source = self._source(path, {"trained": {k: col.meta[k] for k in ("epochs", "steps") if k in col.meta}})
        self.net = self.net.float().eval()
        self.in_channels = int(self.net.downs[0][0].in_channels)

    def wrapper(self):
        from torch import nn

        class ColorizerExport(nn.Module):
            """Eval-mode generator (running batch-norm statistics, no dropout): what was evaluated."""

            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, sketch_hints, category):
                return self.net(sketch_hints, category)

        return ColorizerExport(self.net).eval()

    def example(self):
        import torch
        return (torch.rand(1, self.in_channels, self.size, self.size), torch.tensor([1], dtype=torch.int64))

    def inputs_spec(self):
        s = self.size
        from colorizer import data as CD
        return [{"name": "sketch_hints", "shape": [1, self.in_channels, s, s], "dtype": "float32", "layout": "NCHW",
                 "colour_order": "RGB (hint channels)",
                 "resize": (f"pad the drawing canvas to a centred square (sketch: white, hints: transparent) and "
                            f"resize to {s}x{s} (colorizer.infer.Colorizer._canvas / _hints)"),
                 "normalisation": "channels of colorizer.data.encode(sketch, hints): "
                                  + " ".join((CD.encode.__doc__ or "").split())},
                {"name": "category", "shape": [1], "dtype": "int64", "layout": "N",
                 "normalisation": "0 = unknown, 1 + index in labels.category otherwise"}]

    def outputs_spec(self):
        return [{"name": "rgb", "shape": [1, 3, self.size, self.size], "dtype": "float32", "layout": "NCHW",
                 "colour_order": "RGB", "meaning": "the coloured garment in [-1, 1]: pixel = (v + 1) * 127.5"}]

    def labels(self):
        return {"category": ["unknown", *vocab.FINE_CATEGORIES]}

    def cases(self, purpose):
        import torch
        from colorizer.data import encode
        recs = samples.colorizer_inputs(purpose, self.size, self.data)
        out = []
        for sk, hints, cat in recs.images:
            x = encode(sk, hints)[None].astype(np.float32)
            c = np.array([cat], np.int64)
            out.append(Case({"sketch_hints": x, "category": c}, (torch.from_numpy(x), torch.from_numpy(c))))
        return out, recs.describe()

    def reference(self, x, c):
        import torch
        with torch.no_grad():
            return {"rgb": as_numpy(self.net(x, c))}

    def _ssim(self, a: list[dict], b: list[dict]) -> list[float]:
        return [parity.ssim_rgb(parity.to_uint8_rgb(x["rgb"][0]), parity.to_uint8_rgb(y["rgb"][0]))
                for x, y in zip(a, b)]

    def compare_fp32(self, refs, gots):
        ss = self._ssim(refs, gots)
        diff = max(float(np.abs(x["rgb"] - y["rgb"]).max()) for x, y in zip(refs, gots))
        r = {"n": len(refs), "ssim_min": min(ss), "ssim_mean": float(np.mean(ss)), "max_abs_diff": diff,
             "failures": []}
        if r["ssim_min"] < parity.FP32_SSIM:
            r["failures"].append(f"rgb: SSIM {r['ssim_min']:.4f} < {parity.FP32_SSIM}")
        return r

    def compare_int8(self, fp32, int8, cases, paths=()):
        ss = self._ssim(fp32, int8)
        # reported, not gated (issue #8): the int8 colouriser ships only if it also meets the fp32 bar
        r = {"n": len(fp32), "ssim_min": min(ss), "ssim_mean": float(np.mean(ss)), "failures": [], "gated": False}
        r["meets_fp32_ssim_bar"] = r["ssim_min"] >= parity.FP32_SSIM
        return r


# =========================================================================== detector

class DetectorTarget(Target):
    name = "detector"
    description = "garments in a photo: boxes with coarse categories (YOLO; outputs says whether it needs NMS)"
    input_names = ("images",)
    output_names = ("output0",)
    CONF = 0.25          # Detector.predict's default
    MAP_CONF = 0.001     # mAP is computed over all detections, as Ultralytics' val does
    N_MAP = 30           # the first 30 photos of the detector's validation split: box check and int8 mAP50
    N_CALIB = 64
    _map_cache: dict

    def _weights(self, weights) -> Path:
        """The Ultralytics checkpoint: detector.pt beside the shipped detector.onnx, or the path given."""
        p = Path(weights) if weights else weights_path("detector", must_exist=False)
        if p.suffix == ".onnx":
            p = p.with_suffix(".pt")
        if not p.is_file():
            raise UserError(f"detector checkpoint not found: {p} (the export needs the Ultralytics .pt, not only "
                            "the ONNX file; train it with `sketchshop train detector`)")
        return p

    def load(self, weights):
        import torch
        from detector.ultra import ultralytics_offline
        ultralytics_offline(torch.get_num_threads())  # Ultralytics would otherwise drop torch to 1 thread
        from detector import backbone
        backbone.install()
        from ultralytics import YOLO
        if self.fresh:
            yaml = Path(backbone.__file__).with_name("lite0-yolo26.yaml")
            self.yolo = YOLO(str(yaml))
            from detector.data import NAMES
            self.yolo.model.names = dict(enumerate(NAMES))
            self.imgsz = 320
            self.source = {"weights": None, "version": "untrained", "note": "freshly constructed architecture"}
            self.pt = None
        else:
            self.pt = self._weights(weights)
            try:
                self.yolo = YOLO(str(self.pt), task="detect")
            except Exception as e:
                raise UserError(f"{self.pt}: not a readable Ultralytics detector checkpoint "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
            args = getattr(self.yolo.model, "args", {}) or {}
            self.imgsz = int(args.get("imgsz", 320) if isinstance(args, dict) else getattr(args, "imgsz", 320))
            self.source = self._source(self.pt, {"framework": "ultralytics"})
        self.net = self.yolo.model.float().eval()
        names = self.net.names
        self.names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
        bad = [n for n in self.names if n not in vocab.COARSE_CATEGORIES]
        if bad:
            raise UserError(f"detector classes {bad} are not coarse categories of the vocabulary")
        self.end2end = bool(getattr(self.net.model[-1], "end2end", False))
        self._map_cache = {}

    # Ultralytics exports the detector itself (its exporter uses dynamo=False too).
    def export_ultralytics(self, fmt: str, work: Path) -> Path:
        import contextlib
        import io
        from ultralytics import YOLO
        work.mkdir(parents=True, exist_ok=True)
        if self.pt is not None:
            src = work / "detector.pt"
            shutil.copy(self.pt, src)  # Ultralytics writes next to its input: never into models/
            y = YOLO(str(src), task="detect")
        else:
            y = self.yolo
            y.model.pt_path = str(work / "detector.pt")
        kw = dict(opset=17, simplify=True, dynamic=False) if fmt == "onnx" else dict(optimize=False)
        with contextlib.redirect_stdout(io.StringIO()):
            out = y.export(format=fmt, imgsz=self.imgsz, batch=1, device="cpu", half=False, **kw)
        if not out or not Path(out).is_file():
            raise UserError(f"Ultralytics {fmt} export of the detector wrote nothing")
        return Path(out)

    def wrapper(self):
        raise NotImplementedError("the detector is exported by Ultralytics")

    def example(self):
        import torch
        return (torch.rand(1, 3, self.imgsz, self.imgsz),)

    def inputs_spec(self):
        s = self.imgsz
        return [{"name": "images", "shape": [1, 3, s, s], "dtype": "float32", "layout": "NCHW",
                 "colour_order": "RGB", "value_range": [0.0, 1.0],
                 "resize": (f"letterbox to {s}x{s}: scale r = min({s}/h, {s}/w), resize (bilinear) to "
                            f"round(w*r) x round(h*r), pad equally on both sides with grey 114 "
                            "(Ultralytics LetterBox, detector.infer.letterbox); apply EXIF rotation first"),
                 "normalisation": "pixel / 255; the model normalises inside"}]

    def outputs_spec(self):
        if self.end2end:
            return [{"name": "output0", "shape": [1, 300, 6], "dtype": "float32",
                     "meaning": ("NMS-free detections, best first: [x1, y1, x2, y2, score, class] in input-tensor "
                                 "pixels; keep score >= 0.25, undo the letterbox (subtract pad, divide by r), "
                                 "class indexes labels.category")}]
        return [{"name": "output0", "shape": [1, 4 + len(self.names), "anchors"], "dtype": "float32",
                 "meaning": ("per anchor cx, cy, w, h (input pixels) then the class scores (sigmoids); keep the "
                             "best class >= 0.25, class-aware NMS at IoU 0.7 (at most 300), undo the letterbox")}]

    def labels(self):
        return {"category": list(self.names)}

    def cases(self, purpose):
        import torch
        from detector.infer import letterbox
        n = {"parity": self.N_MAP, "calibration": self.N_CALIB}[purpose]
        recs = samples.detector_photos(purpose, n, self.data)
        out = []
        for img_id, im, truth in recs.images:
            x, lb = letterbox(im, self.imgsz, None)  # square: the mobile graph has a static input
            out.append(Case({"images": x}, (torch.from_numpy(x),), {"id": img_id, "truth": truth, "letterbox": lb}))
        return out, recs.describe()

    def reference(self, x):
        import torch
        with torch.no_grad():
            y = self.net(x)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return {"output0": as_numpy(y)}

    def _decode(self, out: dict, conf: float) -> np.ndarray:
        from detector.infer import decode
        return decode(out["output0"], conf, len(self.names))

    def compare_fp32(self, refs, gots):
        r = {"n": len(refs), "conf": self.CONF, "failures": []}
        ious, boxes, missing, extra, sdiff = [], 0, 0, 0, 0.0
        for ref, got in zip(refs, gots):
            lo = self.CONF - parity.SCORE_MARGIN  # weaker boxes play no part in the match
            m = parity.match_detections(self._decode(ref, lo), self._decode(got, lo), self.CONF)
            ious += m["ious"]
            boxes += m["boxes"]
            missing += m["missing"]
            extra += m["extra"]
            sdiff = max(sdiff, m["max_score_diff"])
        r.update(boxes=boxes, min_iou=min(ious) if ious else None, mean_iou=float(np.mean(ious)) if ious else None,
                 unmatched=missing + extra, max_score_diff=sdiff)
        if boxes == 0:
            r["failures"].append("no detections above the threshold to compare (untrained model?)")
        if missing or extra:
            r["failures"].append(f"{missing} reference boxes without a same-class match, {extra} extra boxes")
        if ious and min(ious) < parity.FP32_BOX_IOU:
            r["failures"].append(f"box IoU {min(ious):.4f} < {parity.FP32_BOX_IOU}")
        return r

    def map50(self, path: Path, cases: list[Case]) -> float | None:
        """mAP50 of an ONNX/ORT file on the parity photos, by the detector's own evaluation
        (detector.evaluate.evaluate_coco: pycocotools, conf 0.001), at this export's square input."""
        import tempfile
        from detector.data import subset_coco
        from detector.evaluate import evaluate_coco
        root = samples.shared_data(self.data)
        if root is None or any(c.meta.get("truth") is None for c in cases):
            return None
        coco = root / "ccp-train" / "annotations_coco.json"
        key = sha256(path)  # the int8 file is rewritten per quantisation recipe
        if key not in self._map_cache:
            with tempfile.TemporaryDirectory() as tmp:
                sub = subset_coco(coco, [c.meta["id"] for c in cases], Path(tmp) / "val.json")
                self._map_cache[key] = evaluate_coco(sub, coco.parent, weights=path)["map50"]
        return self._map_cache[key]

    def quant_strategies(self, onnx_path):
        """Everything; then the Detect head in float (its box regression is the most range-sensitive);
        then head and neck in float (only the Lite0 trunk and the stride-32 stage quantised); then, as
        for the classifier, the stem and every depthwise conv in float (the copy-paste model lost 0.08-0.10
        mAP50 with each earlier recipe and 0.003 with this one); then that with uint8 weights."""
        import onnx
        graph = onnx.load(str(onnx_path)).graph
        nodes = [n.name for n in graph.node]
        stem_dw = [n.name for n in graph.node if n.op_type == "Conv" and ("conv_stem" in n.name or any(
            a.name == "group" and a.i > 1 for a in n.attribute))]
        layers = len(self.net.model)
        head, neck_from = layers - 1, 7  # yaml rows 7.. are the neck (lite0-yolo26.yaml)

        def layer_of(name):
            parts = name.split("/")
            return int(parts[1].split(".")[1]) if len(parts) > 1 and parts[1].startswith("model.") else -1
        ops = ("Conv", "MatMul")
        return [{"name": "quantised ops Conv, MatMul", "op_types": ops},
                {"name": "quantised ops Conv, MatMul; Detect head in float", "op_types": ops,
                 "exclude": [n for n in nodes if layer_of(n) == head]},
                {"name": "quantised ops Conv, MatMul; neck and head in float", "op_types": ops,
                 "exclude": [n for n in nodes if layer_of(n) >= neck_from]},
                {"name": "quantised ops Conv, MatMul; stem and depthwise convs in float", "op_types": ops,
                 "exclude": stem_dw},
                # On an AVX512-VNNI AMD EPYC (24 Nov 2026) every int8-weight recipe above lost 0.05-0.08 mAP50 on the
                # same files that lost 0.003 on the earlier CPU without VNNI; uint8 weights lost 0.004.
                {"name": "quantised ops Conv, MatMul; stem and depthwise convs in float; uint8 weights",
                 "op_types": ops, "exclude": stem_dw, "weight_type": "uint8"}]

    def compare_int8(self, fp32, int8, cases, paths=()):
        a, b = self.map50(paths[0], cases), self.map50(paths[1], cases)
        r = {"n": len(cases), "failures": [], "map50_fp32": a, "map50_int8": b,
             "how": "detector.evaluate.evaluate_coco on the parity photos"}
        if a is None:
            r["failures"].append("no labelled photos (ccp-train absent): cannot measure the mAP50 drop")
            return r
        r["map50_drop"] = round(a - b, 4)
        if a - b > parity.INT8_MAP50_DROP:
            r["failures"].append(f"mAP50 drop {a - b:.4f} > {parity.INT8_MAP50_DROP} ({a:.4f} -> {b:.4f})")
        return r


TARGETS = {t.name: t for t in (ClassifierTarget, DetectorTarget, ColorizerTarget)}
