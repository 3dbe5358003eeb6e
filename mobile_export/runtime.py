"""Format conversions and runtimes: TorchScript, ONNX (legacy exporter), ORT format, int8, latency.

Exporter choice: `torch.onnx.export(..., dynamo=False)`, the TorchScript-based exporter. Since
torch 2.9 the default is the dynamo exporter, with public reports of silently wrong ResNet
outputs; the legacy exporter is what Ultralytics uses for the detector too, so all three models
go through one well-trodden path, and every file is checked numerically anyway (parity.py).
Opset 17: every op we need exists there, and ONNX Runtime Mobile has supported it since 1.13,
so apps pinned to an older `onnxruntime-android` still load the files.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from sketchshop import accel
from sketchshop.errors import UserError

log = logging.getLogger(__name__)

OPSET = 17
LATENCY_RUNS = 15
LATENCY_WARMUP = 3


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with `n` torch intra-op threads (latency is measured single-threaded)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def to_torchscript(module, example: tuple, path: Path) -> Path:
    """Trace `module` (eval mode) to a plain TorchScript file; check it reloads."""
    import torch
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the "TorchScript is deprecated" notice
        traced = torch.jit.trace(module, example, check_trace=False)
        traced = torch.jit.freeze(traced)
    traced.save(str(path))
    load_torchscript(path)
    return path


def load_torchscript(path: Path):
    """torch.jit.load in eval mode, without the 'TorchScript is deprecated' warning on every load."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()


def to_onnx(module, example: tuple, path: Path, input_names, output_names, metadata: dict | None = None) -> Path:
    """Export with the legacy (TorchScript) exporter at OPSET, fixed batch 1; run the ONNX checker."""
    import onnx
    import torch
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(input_names), output_names=list(output_names),
                          do_constant_folding=True)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    if metadata:
        set_metadata(path, metadata)
    return path


def set_metadata(path: Path, metadata: dict) -> None:
    """Add string key/values to an ONNX file's metadata_props (kept by the ORT conversion too)."""
    import onnx
    m = onnx.load(str(path))
    props = {p.key: p.value for p in m.metadata_props}
    props.update({k: str(v) for k, v in metadata.items()})
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def to_ort(onnx_paths: list[Path], out_dir: Path, ops_config: Path | None = None) -> list[Path]:
    """Convert ONNX files to ORT format (ONNX Runtime Mobile) with onnxruntime's own converter.

    Returns the .ort paths (same stems, in `out_dir`); `ops_config` receives the operator list
    for a reduced ONNX Runtime build covering these models.
    """
    with tempfile.TemporaryDirectory(prefix="ort-", dir=out_dir) as tmp:
        tmp = Path(tmp)
        for p in onnx_paths:
            shutil.copy(p, tmp / p.name)
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(tmp),
               "--output_dir", str(tmp / "out"), "--optimization_style", "Fixed"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError("ORT format conversion failed: " + (r.stderr or r.stdout).strip().splitlines()[-1][:300])
        out = []
        for p in onnx_paths:
            src = tmp / "out" / (p.stem + ".ort")
            if not src.is_file():
                raise UserError(f"ORT format conversion wrote no {src.name}")
            shutil.move(src, out_dir / src.name)
            out.append(out_dir / src.name)
        cfg = sorted((tmp / "out").glob("*.config"))
        if ops_config and cfg:
            shutil.move(cfg[0], ops_config)
    return out


def session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session (ONNX or ORT format), single-threaded by default, set up as served."""
    import onnxruntime as ort
    return ort.InferenceSession(str(path), accel.session_options(threads), providers=["CPUExecutionProvider"])


def quantize_int8(src: Path, dst: Path, calibration: list[dict], *, op_types=("Conv", "Gemm", "MatMul"),
                  exclude: list[str] = (), weight_type: str = "int8", weight_only: list[str] = ()) -> Path:
    """Static int8 (`sketchshop.accel.quantize_int8`) of the arithmetic that carries the cost, `op_types`:
    everything else (the normalisation, the L2 norm of the embedding, resizes, the detector's top-k)
    stays float. `weight_only` Conv nodes (normally among `exclude`) keep float activations but int8 weights.
    """
    accel.quantize_int8(src, dst, calibration, op_types=op_types, exclude=exclude, weight_type=weight_type)
    if weight_only:
        quantize_weights_only(dst, weight_only)
    return dst


def quantize_weights_only(path: Path, nodes) -> int:
    """Store the float weights of the Conv `nodes` as per-channel symmetric int8 behind a
    DequantizeLinear, in place; their activations stay float. For layers whose activations do
    not survive uint8 (depthwise convs on AVX2-only CPUs) this still shrinks the file 4x for
    them, at the cost of weight rounding only. Returns how many weights were converted."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    wanted, out = set(nodes), []
    for n in g.node:
        w = numpy_helper.to_array(inits[n.input[1]]) if (
            n.op_type == "Conv" and n.name in wanted and len(n.input) > 1 and n.input[1] in inits) else None
        if w is None or w.dtype != np.float32:
            out.append(n)
            continue
        scale = np.maximum(np.abs(w).reshape(len(w), -1).max(1), 1e-12) / 127.0
        q = np.clip(np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127).astype(np.int8)
        name = n.input[1]
        g.initializer.remove(inits.pop(name))
        g.initializer.extend([numpy_helper.from_array(q, f"{name}_w8"),
                              numpy_helper.from_array(scale.astype(np.float32), f"{name}_w8_scale"),
                              numpy_helper.from_array(np.zeros(len(w), np.int8), f"{name}_w8_zero")])
        out.append(helper.make_node("DequantizeLinear", [f"{name}_w8", f"{name}_w8_scale", f"{name}_w8_zero"],
                                    [f"{name}_w8_dq"], name=f"{n.name}_weight_dq", axis=0))
        n.input[1] = f"{name}_w8_dq"
        out.append(n)
    done = len(out) - len(g.node)
    g.ClearField("node")
    g.node.extend(out)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return done


def median_ms(fn, runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
    """Median wall time of `fn()` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def ort_latency(path: Path, feed: dict) -> float:
    """ONNX Runtime CPU latency, 1 thread, batch 1 (the phone-like setting)."""
    s = session(path, 1)
    return median_ms(lambda: s.run(None, feed))


def torch_latency(module, inputs: tuple) -> float:
    """PyTorch CPU latency, 1 thread, batch 1 (eager module or TorchScript)."""
    import torch
    with torch_threads(1), torch.no_grad():
        return median_ms(lambda: module(*inputs))


def file_size(path: Path) -> int:
    return os.path.getsize(path)


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
