"""Parity metrics between a reference (PyTorch, or the fp32 export) and an exported model.

Each check returns a dict of numbers plus `failures`: a list of human-readable reasons, empty
when the thresholds of issue #8 hold. The thresholds live here, in one place.
"""
from __future__ import annotations

import numpy as np

# fp32 export vs PyTorch
RTOL, ATOL = 1e-3, 1e-5
FP32_TOP1 = 1.0
FP32_BOX_IOU = 0.99
FP32_SSIM = 0.99
# int8 vs fp32
INT8_TOP1 = 0.98
INT8_COSINE = 0.98
INT8_MAP50_DROP = 0.02
SCORE_MARGIN = 0.02   # detector scores this close to the threshold are not a disagreement


def close(ref: np.ndarray, got: np.ndarray, name: str, rtol: float = RTOL, atol: float = ATOL) -> dict:
    """Elementwise |got - ref| <= atol + rtol * |ref| (numpy.allclose), with the worst offenders."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return {"output": name, "failures": [f"{name}: shape {got.shape} != reference {ref.shape}"]}
    diff = np.abs(got - ref)
    excess = diff - (atol + rtol * np.abs(ref))
    r = {"output": name, "max_abs_diff": float(diff.max()) if diff.size else 0.0,
         "max_rel_diff": float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0,
         "allclose": bool((excess <= 0).all()), "rtol": rtol, "atol": atol, "failures": []}
    if not r["allclose"]:
        r["failures"].append(f"{name}: {int((excess > 0).sum())} of {diff.size} values outside "
                             f"rtol={rtol}/atol={atol} (max abs diff {r['max_abs_diff']:.3g})")
    return r


def top1_agreement(ref_logits: np.ndarray, got_logits: np.ndarray) -> float:
    return float((np.argmax(ref_logits, -1) == np.argmax(got_logits, -1)).mean())


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from detector.infer import box_iou as _iou
    return _iou(np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4))


def match_detections(ref: np.ndarray, got: np.ndarray, conf: float, margin: float = SCORE_MARGIN) -> dict:
    """Pair each confident reference box with the export's box of the same class (best IoU).

    `ref`/`got`: (K, 6) [x1, y1, x2, y2, score, class]. Boxes whose score is within `margin` of
    the threshold are ignored on both sides: a 0.2501 vs 0.2499 score is not a disagreement.
    Returns the worst IoU, the number of unmatched boxes and the max score difference.
    """
    strong_r = ref[ref[:, 4] >= conf + margin]
    strong_g = got[got[:, 4] >= conf + margin]
    weak_g = got[got[:, 4] >= conf - margin]
    weak_r = ref[ref[:, 4] >= conf - margin]
    ious, score_diff, missing = [], [], 0
    for row in strong_r:
        cand = weak_g[weak_g[:, 5] == row[5]]
        if not len(cand):
            missing += 1
            continue
        iou = box_iou(row[None, :4], cand[:, :4])[0]
        j = int(iou.argmax())
        ious.append(float(iou[j]))
        score_diff.append(abs(float(cand[j, 4] - row[4])))
    extra = sum(1 for row in strong_g if not (weak_r[:, 5] == row[5]).any()
                or box_iou(row[None, :4], weak_r[weak_r[:, 5] == row[5], :4]).max() < 0.5)
    return {"boxes": int(len(strong_r)), "min_iou": min(ious) if ious else None, "ious": ious,
            "missing": missing, "extra": int(extra), "max_score_diff": max(score_diff) if score_diff else 0.0}


def ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two HxWx3 uint8 images (scikit-image, data range 255)."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def to_uint8_rgb(y: np.ndarray) -> np.ndarray:
    """Colouriser output (3, H, W) in [-1, 1] -> HxWx3 uint8, as the app would show it."""
    return np.clip((np.asarray(y, np.float32).transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
