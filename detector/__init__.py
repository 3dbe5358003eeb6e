"""Garment detector: finds each garment in a photo so each can be searched on its own.

Public surface: `Detector` (ONNX Runtime inference, used by the server), `train`, `evaluate_coco`,
`evaluate_products`, `export`. Ultralytics/torch are imported only by training, export and tests.
"""
from .infer import Detector

__all__ = ["Detector", "train", "evaluate_coco", "evaluate_products", "export"]


def __getattr__(name):  # keep `import detector` light: the server needs only Detector
    if name == "train":
        from .train import train
        return train
    if name in ("evaluate_coco", "evaluate_products"):
        from . import evaluate
        return getattr(evaluate, name)
    if name == "export":
        from .export import export
        return export
    raise AttributeError(name)
