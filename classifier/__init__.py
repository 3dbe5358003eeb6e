"""Garment classifier: category, colour, attributes and a sketch/photo embedding (issue #4).

Public API: `Classifier.load(path=None)`, `.predict(images, kind, hints, topk)`, `.embed(images, kind)`,
`.preprocess(image)`. Training: `classifier.train.train(TrainConfig(...))` / `sketchshop train classifier`.
"""
from __future__ import annotations

__all__ = ["Classifier"]


def __getattr__(name):  # lazy: `import classifier` must not pull in torch
    if name == "Classifier":
        from .predict import Classifier
        return Classifier
    raise AttributeError(name)
