"""Serve an eager PyTorch network through ONNX Runtime: the same weights, several times less latency.

Eager PyTorch pays a per-operator dispatch cost that dominates small CPU networks at batch 1
(EfficientNet-Lite0: about 5x slower than ONNX Runtime here, `sketchshop bench`). The ONNX file is
built locally from the loaded weights on first use, cached under `settings().cache_dir` by a key
that names the weights' sha256, and checked against PyTorch on a random input before it is
trusted; on any failure the caller keeps eager PyTorch and the log says why.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import settings
from .files import atomic_write, keep_newest

log = logging.getLogger(__name__)
OPSET = 17
KEPT_PER_MODEL = 4  # cached ONNX files per model (the key's text before its first "-") and precision, the last used


@functools.cache
def pool() -> ThreadPoolExecutor:
    """Threads for the numpy/OpenCV work beside a network's run (both release the GIL): one per process."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="preprocess")


class OrtModule:
    """Callable like the torch module it replaces: tensors in, the module's outputs (as tensors) out."""

    def __init__(self, session, input_names: tuple, output_names: tuple, as_dict: bool, path: Path | None = None):
        self.session, self.input_names, self.output_names, self.as_dict = session, input_names, output_names, as_dict
        self.path = path  # the ONNX file it runs

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
                keep_newest(path.parent, f"{key.split('-', 1)[0]}-*-opset{OPSET}.onnx", KEPT_PER_MODEL)
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
                     input_names, output_names, as_dict, path)
    for name, r, g in _paired_outputs(module, fast, example):
        if not np.allclose(g.numpy(), r.numpy(), rtol=rtol, atol=atol):
            raise ValueError(f"output {name} differs from PyTorch by up to {float((g - r).abs().max()):.3g}")
    return fast


def _paired_outputs(module, copy, example: tuple) -> list[tuple]:
    """(name, PyTorch's output, the copy's) for each of `copy`'s outputs on `example`."""
    import torch
    with torch.no_grad():
        ref, got = module(*example), copy(*example)
    if not copy.as_dict:
        return [(copy.output_names[0], ref, got)]
    return [(k, ref[k], got[k]) for k in copy.output_names]


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


class OvModule:
    """Callable like OrtModule: the same ONNX file compiled by OpenVINO's CPU plugin. An infer request
    serves one call at a time, so each calling thread gets its own."""

    def __init__(self, compiled, input_names: tuple, output_names: tuple, as_dict: bool, path: Path,
                 precision: str):
        self.compiled, self.input_names, self.output_names, self.as_dict = compiled, input_names, output_names, as_dict
        self.path, self.precision = path, precision
        self._local = threading.local()

    def __call__(self, *xs):
        import torch
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        res = request.infer({n: x.detach().contiguous().numpy() for n, x in zip(self.input_names, xs)})
        outs = [torch.from_numpy(np.array(res[o])) for o in self.compiled.outputs]  # copies: the request reuses them
        return dict(zip(self.output_names, outs)) if self.as_dict else outs[0]


def openvino_module(fast: OrtModule, module, example: tuple, *, atol: float,
                    min_speedup: float = 1.1) -> OvModule | None:
    """`fast`'s ONNX file compiled by OpenVINO, or None (the caller keeps ONNX Runtime).

    On a CPU with bfloat16 instructions (this machine's AVX512-BF16) OpenVINO runs convolutions in
    bfloat16: the colouriser's generator took 3.2 ms there against 5.0 in ONNX Runtime (float; ONNX Runtime's
    CPU provider has no bfloat16 kernels), at 4.5 ms in float. Kept when its outputs are within `atol`
    of `module`'s on `example` (checked at every load) and it runs `min_speedup` times faster than `fast`.
    The two are timed in turns once per ONNX file and thread count, and the times are cached beside the
    file (`*.openvino-t<threads>.json`), so that a load neither pays for the timing nor meets another
    verdict than the last one; SKETCHSHOP_OPENVINO=off, or OpenVINO not installed, keeps ONNX Runtime."""
    if settings().openvino == "off" or fast is None:
        return None
    try:
        import openvino as ov
    except ImportError:
        return None
    base = Path(fast.path)
    threads = fast.session.get_session_options().intra_op_num_threads
    times_path = base.with_suffix(f".openvino-t{threads}.json")

    def slower(times) -> bool:
        if times["openvino_ms"] * min_speedup <= times["onnxruntime_ms"]:
            return False
        log.info("%s stays in ONNX Runtime: OpenVINO (%s) is not %sx faster here (%.2f against %.2f ms)",
                 base.name, times["precision"], min_speedup, times["openvino_ms"], times["onnxruntime_ms"])
        return True

    try:
        cached = json.loads(times_path.read_text())
        times = {"onnxruntime_ms": float(cached["onnxruntime_ms"]), "openvino_ms": float(cached["openvino_ms"]),
                 "precision": str(cached["precision"])}
        os.utime(times_path)  # used: the least recently used files of a model are the ones dropped
    except (OSError, ValueError, KeyError, TypeError):
        times = None
    if times and slower(times):  # known: not even compiled
        return None
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(base)), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
            "ENABLE_CPU_PINNING": False})  # a shared machine: the scheduler places the threads
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "bf16" or "f32"
        ov_module = OvModule(compiled, fast.input_names, fast.output_names, fast.as_dict, base, precision)
        worst = max(float((g - r).abs().max()) for _, r, g in _paired_outputs(module, ov_module, example))
        if worst > atol:
            raise ValueError(f"its outputs differ from PyTorch's by up to {worst:.3g} (allowed {atol})")
        if times is None:
            feed = {n: x.numpy() for n, x in zip(fast.input_names, example)}
            request = compiled.create_infer_request()
            ort_ms, ov_ms = _median_ms((lambda: fast.session.run(None, feed), lambda: request.infer(feed)))
            times = {"onnxruntime_ms": round(ort_ms, 3), "openvino_ms": round(ov_ms, 3), "precision": precision}
            with atomic_write(times_path) as f:
                json.dump(times, f)
            keep_newest(base.parent, f"{base.name.split('-', 1)[0]}-*.openvino-t{threads}.json", KEPT_PER_MODEL)
    except Exception as e:  # noqa: BLE001 - an operator OpenVINO cannot read, a parity miss
        log.warning("%s stays in ONNX Runtime: OpenVINO failed (%s)", base.name, str(e).splitlines()[0][:200])
        return None
    if slower(times):
        return None
    log.info("%s in OpenVINO (%s): %.2f against %.2f ms in ONNX Runtime; outputs within %.3g",
             base.name, precision, times["openvino_ms"], times["onnxruntime_ms"], worst)
    return ov_module


def int8_module(fast: OrtModule, calibration, check, accept, *,
                min_speedup: float = 1.25) -> OrtModule | None:
    """A static-int8 copy of `fast`, or None where it would cost accuracy or not save time.

    `calibration()` and `check()` return lists of input feeds, made only when a copy is built.
    Built once per ONNX file of `fast` by ONNX Runtime's quantiser, MinMax ranges from the calibration
    feeds: every operator it knows in int8 (restricted to Conv/Gemm/MatMul, the float
    activations between them took the classifier from 2.8 to 5.3 ms), but for those that read the
    network's inputs (in int8, the classifier's stem conv cost 0.6 points of top-1 on validation
    photos). Kept when, on the check feeds, `accept(fp32_outputs, int8_outputs)` (a dict of
    measures) has no "why_not" and int8 runs `min_speedup` times faster: x86 CPUs without VNNI
    ran the classifier's int8 2x slower than float (the classifier card, session 6). The verdict
    is cached beside the file, so that a refused copy is not rebuilt at every start.
    """
    import onnxruntime as ort
    base = Path(fast.path)
    path, verdict_path = base.with_suffix(".int8.onnx"), base.with_suffix(".int8.json")
    so = session_options(fast.session.get_session_options().intra_op_num_threads)

    def module() -> OrtModule:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return OrtModule(session, fast.input_names, fast.output_names, fast.as_dict, path)

    try:
        verdict = json.loads(verdict_path.read_text())
        os.utime(verdict_path)
        if not verdict["used"]:
            return None
        os.utime(path)
        return module()
    except Exception as e:  # noqa: BLE001 - none yet, or unreadable files: (re)build them
        if verdict_path.exists():
            log.info("%s: rebuilding (%s)", path.name, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
    log.info("building the int8 copy of %s (once per weights file)", base.name)
    try:
        import onnx
        graph = onnx.load(str(base)).graph
        stems = [n.name for n in graph.node if {i.name for i in graph.input} & set(n.input)]
        with tempfile.TemporaryDirectory(prefix=".int8-", dir=path.parent) as tmp:
            quantize_int8(base, Path(tmp) / path.name, calibration(), exclude=stems)
            os.replace(Path(tmp) / path.name, path)
        int8 = module()
        names = fast.output_names if fast.as_dict else ("output",)
        check = check()
        ref = [dict(zip(names, fast.session.run(None, c))) for c in check]
        verdict = accept(ref, [dict(zip(names, int8.session.run(None, c))) for c in check])
        fp32_ms, int8_ms = _median_ms([lambda s=s: s.run(None, check[0]) for s in (fast.session, int8.session)])
        if not verdict.get("why_not") and int8_ms * min_speedup > fp32_ms:
            verdict["why_not"] = f"int8 is not {min_speedup}x faster here ({int8_ms:.2f} against {fp32_ms:.2f} ms)"
        verdict.update(used=not verdict.get("why_not"), fp32_ms=round(fp32_ms, 2), int8_ms=round(int8_ms, 2))
    except Exception as e:  # noqa: BLE001 - the quantiser or ONNX Runtime refused the graph
        verdict = {"used": False, "why_not": f"quantisation failed: {str(e).splitlines()[0][:200]}"}
    with atomic_write(verdict_path) as f:
        json.dump(verdict, f)
    for suffix in (".int8.json", ".int8.onnx"):  # as many as float files are kept
        keep_newest(path.parent, f"{base.name.split('-', 1)[0]}-*{suffix}", KEPT_PER_MODEL)
    if not verdict["used"]:
        path.unlink(missing_ok=True)
        log.warning("%s stays in float: %s", base.name, verdict["why_not"])
        return None
    log.info("%s in int8: %s", base.name, verdict)
    return int8


def _median_ms(calls, runs: int = 20) -> list[float]:
    """Median ms per call of each of `calls`, called in turns: a neighbour that takes the CPU for a
    while slows them alike instead of deciding the verdict."""
    for _ in range(3):
        for call in calls:
            call()
    times = [[] for _ in calls]
    for _ in range(runs):
        for call, ts in zip(calls, times):
            t0 = time.perf_counter()
            call()
            ts.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(ts) for ts in times]


def quantize_int8(src: Path, dst: Path, calibration: list[dict], *, op_types=None, exclude=(),
                  weight_type: str = "int8") -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations, MinMax) calibrated on `calibration`.

    `op_types`: the operators to quantise (None: every one ONNX Runtime can).
    `weight_type="uint8"` (U8U8) avoids the U8S8 saturation of x86 CPUs without VNNI (AVX2 only;
    ONNX Runtime's quantisation guide), which costs depthwise-heavy networks most.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="q-", dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        root.setLevel(max(level, logging.WARNING))  # onnxruntime.quantization logs every node at INFO on root
        with contextlib.ExitStack() as stack:
            stack.callback(root.setLevel, level)
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            try:
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            except Exception as e:  # symbolic shape inference gives up on some graphs; plain is fine
                log.info("quantisation pre-processing with symbolic shapes failed (%s); without", e)
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8,
                            weight_type={"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[weight_type],
                            op_types_to_quantize=None if op_types is None else list(op_types),
                            nodes_to_exclude=list(exclude), extra_options={"CalibTensorRangeSymmetric": False})
    return dst
