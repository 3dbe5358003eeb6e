"""The `sketchshop` command itself."""
from __future__ import annotations

import subprocess
import sys


def test_commands_register_without_the_model_libraries():
    """Every command (`--help`, `crawl run`, `shop serve`, the gunicorn master of `serve`) starts without torch and
    friends (torch alone is ~500 MB and a second): they load inside the commands that use them."""
    code = ("import sys; from sketchshop import cli; cli.build(); "
            "print(sorted(m for m in ('torch', 'timm', 'onnxruntime', 'faiss', 'flask', 'selenium') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
