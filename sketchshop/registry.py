"""Model registry: architecture factories by name (as in timm) and the shipped default weights.

Shipped weights live in `models/<task>/` (weights file, `card.md`, `metrics.json`); a user
points a task at their own file with `SKETCHSHOP_<TASK>_WEIGHTS` or an explicit path.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from .errors import UserError

_FACTORIES: dict[str, dict[str, Callable]] = {}

DEFAULT_WEIGHTS = {  # task -> file name under models/<task>/
    "classifier": "classifier.pt",
    "detector": "detector.onnx",
    "colorizer": "colorizer.pt",
}


def register(task: str, name: str | None = None):
    """Decorator: register an architecture factory under `task`/`name`."""
    def deco(fn):
        _FACTORIES.setdefault(task, {})[name or fn.__name__] = fn
        return fn
    return deco


def create(task: str, name: str, **kw):
    try:
        fn = _FACTORIES[task][name]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES.get(task, {}))) or "none"
        raise UserError(f"unknown {task} architecture {name!r} (known: {known})") from None
    return fn(**kw)


def list_models(task: str) -> list[str]:
    return sorted(_FACTORIES.get(task, {}))


def weights_path(task: str, override: str | os.PathLike | None = None, *, must_exist: bool = True) -> Path:
    """The weights file for a task: explicit override, env variable, or the shipped default."""
    from .config import settings
    p = override or os.environ.get(f"SKETCHSHOP_{task.upper()}_WEIGHTS")
    path = Path(p) if p else Path(settings().models_dir) / task / DEFAULT_WEIGHTS[task]
    if must_exist and not path.is_file():
        raise UserError(f"{task} weights not found: {path} (train them with `sketchshop train {task}` "
                        f"or set SKETCHSHOP_{task.upper()}_WEIGHTS)")
    return path


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_used(task: str, override=None) -> dict:
    """For an evaluation's JSON: which weights file gave its numbers (an override or SKETCHSHOP_<TASK>_WEIGHTS
    included), so that a number can be traced to its model."""
    path = weights_path(task, override).resolve()
    return {"weights": str(path), "weights_sha256": sha256(path)}
