"""Serve an eager PyTorch network through ONNX Runtime: the same weights, several times less latency.

Eager PyTorch pays a per-operator dispatch cost that dominates small CPU networks at batch 1
(EfficientNet-Lite0: about 5x slower than ONNX Runtime here, `sketchshop bench`). The ONNX file is
built locally from the loaded weights on first use, cached under `settings().cache_dir` by a key
that names the weights' sha256, and checked against PyTorch on a random input before it is
trusted; on any failure the caller keeps eager PyTorch and the log says why.
"""
from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import settings
from .files import atomic_write, keep_newest

log = logging.getLogger(__name__)
OPSET = 17
KEPT_PER_MODEL = 4  # cached ONNX files per model (the key's text before its first "-"), the last used


@functools.cache
def pool() -> ThreadPoolExecutor:
    """Threads for the numpy/OpenCV work beside a network's run (both release the GIL): one per process."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="preprocess")


class OrtModule:
    """Callable like the torch module it replaces: tensors in, the module's outputs (as tensors) out."""

    def __init__(self, session, input_names: tuple, output_names: tuple, as_dict: bool):
        self.session, self.input_names, self.output_names, self.as_dict = session, input_names, output_names, as_dict

    def __call__(self, *xs):
        import torch
        outs = self.session.run(None, {n: x.detach().contiguous().numpy() for n, x in zip(self.input_names, xs)})
        outs = [torch.from_numpy(o) for o in outs]
        return dict(zip(self.output_names, outs)) if self.as_dict else outs[0]


def onnx_module(module, example: tuple, input_names: tuple, output_names: tuple, key: str,
                threads: int | None = None, as_dict: bool = True, rtol: float = 1e-3, atol: float = 1e-4):
    """An OrtModule equivalent to `module` (eval mode), or None when ONNX Runtime cannot take it.

    `module(*example)` returns a dict keyed by `output_names` (as_dict) or one tensor. The batch
    axis is dynamic. `key` must change whenever the weights do (use their sha256).
    """
    if settings().runtime.lower() != "onnx":
        return None
    import torch
    try:
        import onnxruntime as ort
    except ImportError:
        log.warning("onnxruntime is not installed: %s runs in eager PyTorch", key)
        return None
    path = Path(settings().cache_dir) / "onnx" / f"{key}-torch{torch.__version__}-opset{OPSET}.onnx"
    for attempt in (1, 2):  # a cached file that fails is rebuilt once
        try:
            if path.is_file():
                os.utime(path)  # used: the least recently used files of a model are the ones dropped
            else:
                _export(module, example, input_names, output_names, path, as_dict)
                # each retraining, code change or test run names a new file of up to 17 MB (1.1 GB here once)
                keep_newest(path.parent, f"{key.split('-', 1)[0]}-*.onnx", KEPT_PER_MODEL)
            fast = _checked(ort, path, module, example, input_names, output_names, threads, as_dict, rtol, atol)
            break
        except Exception as e:  # a broken cache file, an unsupported operator, a parity miss
            path.unlink(missing_ok=True)
            if attempt == 2:
                log.warning("%s stays in eager PyTorch: ONNX Runtime path failed (%s)", key, str(e).splitlines()[0][:200])
                return None
    return fast


def session_options(threads: int):
    """Options of every served ONNX Runtime session. Its threads busy-wait between the operators of a
    run (woken from sleep for each one, the detector's network took 3.9-5.6 instead of 2.6-3.2 ms on 2
    threads) but not after it: the server runs several models in a row on the same cores, and one
    session's spinning threads slowed the next model's run 2-3x."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.force_spinning_stop", "1")
    return so


def _checked(ort, path, module, example, input_names, output_names, threads, as_dict, rtol, atol) -> OrtModule:
    """A session on `path` whose outputs match `module` on `example` (ValueError otherwise)."""
    import torch
    so = session_options(threads or torch.get_num_threads())
    fast = OrtModule(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]),
                     input_names, output_names, as_dict)
    with torch.no_grad():
        ref, got = module(*example), fast(*example)
    ref = [ref[k] for k in output_names] if as_dict else [ref]
    got = [got[k] for k in output_names] if as_dict else [got]
    for name, r, g in zip(output_names, ref, got):
        if not np.allclose(g.numpy(), r.numpy(), rtol=rtol, atol=atol):
            raise ValueError(f"output {name} differs from PyTorch by up to {float((g - r).abs().max()):.3g}")
    return fast


def _export(module, example, input_names, output_names, path: Path, as_dict: bool) -> None:
    import torch

    class Wrapped(torch.nn.Module):  # ONNX wants a tuple of outputs
        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, *xs):
            out = self.m(*xs)
            return tuple(out[k] for k in output_names) if as_dict else out

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    log.info("building the ONNX Runtime copy of %s (once per weights file)", path.name)
    with atomic_write(path, "wb") as f, torch.no_grad():
        torch.onnx.export(Wrapped().eval(), example, f, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes, opset_version=OPSET, dynamo=False)
