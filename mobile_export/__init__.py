"""Mobile export (issue #8): TorchScript, ONNX, ORT format and int8 files for the phone, each checked
against PyTorch and described in a manifest.json.

    from mobile_export import export, verify
    manifest = export("out/mobile", models=("classifier",), int8=True)
"""
from .export import MODELS, ExportFailed, export, load_manifest, verify

__all__ = ["MODELS", "ExportFailed", "export", "load_manifest", "verify"]
