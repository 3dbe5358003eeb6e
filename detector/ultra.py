"""Import Ultralytics offline, with its state kept under the data directory.

Ultralytics reads YOLO_OFFLINE at import time and otherwise tries to download fonts, AMP-check
weights and send telemetry, and keeps settings in ~/.config; every entry point that needs it
goes through `ultralytics_offline()` so none of that happens (see docs field notes).
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_READY = False


def ultralytics_offline(threads: int | None = None):
    """Return the `ultralytics` module configured for offline use; `threads` = torch CPU threads."""
    global _READY
    from sketchshop.config import settings

    root = settings().path("ultralytics", "x").parent
    if not _READY:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "false"
        os.environ.setdefault("YOLO_CONFIG_DIR", str(root / "config"))
        os.environ.setdefault("YOLO_VERBOSE", "true")
    import ultralytics
    from ultralytics.utils import SETTINGS, patches
    # Ultralytics wraps PIL.Image.open to fetch `pi-heif` on the first unidentified file, which
    # turns a non-image upload into ModuleNotFoundError; sketchshop.images registers HEIF itself.
    patches._pil_plugins_registered = True
    if not _READY:
        want = {"sync": False, "runs_dir": str(root / "runs"), "datasets_dir": str(root / "datasets"),
                "weights_dir": str(root / "weights"), "tensorboard": False, "mlflow": False, "wandb": False,
                "clearml": False, "comet": False, "dvc": False, "neptune": False, "raytune": False,
                "vscode_msg": False, "openvino_msg": False}
        SETTINGS.update({k: v for k, v in want.items() if k in SETTINGS})
        _READY = True
    if threads:
        # Ultralytics resets torch to cpu_count-1 threads (1 on this machine) when it selects the CPU.
        import torch
        from ultralytics.utils import torch_utils
        torch_utils.NUM_THREADS = threads
        torch.set_num_threads(threads)
    return ultralytics
