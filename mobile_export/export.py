"""`export()`: every model to TorchScript, ONNX, ORT format and int8, each file checked and described.

The export is built in a staging directory and replaces `out` only when every parity check
holds; otherwise it is kept in `<out>.failed/` for inspection and ExportFailed is raised, so a
good export is never overwritten by a bad one.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from sketchshop.errors import UserError
from sketchshop.files import WRITTEN, replaced_dir
from sketchshop.registry import sha256

from . import runtime
from .models import TARGETS, Case, Target

log = logging.getLogger(__name__)

FORMAT = "sketchshop-mobile-export/1"
MANIFEST = "manifest.json"
MODELS = tuple(TARGETS)
# Size budgets of issue #8, in MB (10^6 bytes): (model, precision) -> limit
SIZE_TARGETS = {("classifier", "int8"): 5.0, ("detector", "fp32"): 6.0, ("colorizer", "fp32"): 20.0}


class ExportFailed(Exception):
    """Parity did not hold; the message lists every failing check."""


def _run_onnx(path: Path, cases: list[Case], output_names) -> list[dict]:
    s = runtime.session(path, 1)
    names = [o.name for o in s.get_outputs()]
    if list(names) != list(output_names):
        raise ExportFailed(f"{path.name}: outputs {names}, expected {list(output_names)}")
    return [dict(zip(names, s.run(None, c.feed))) for c in cases]


def _run_torchscript(path: Path, cases: list[Case], output_names) -> list[dict]:
    import torch
    m = runtime.load_torchscript(path)
    outs = []
    with torch.no_grad():
        for c in cases:
            y = m(*[torch.from_numpy(c.feed[k]) for k in c.feed])
            y = y if isinstance(y, (list, tuple)) else (y,)
            outs.append({k: runtime.as_numpy(v) for k, v in zip(output_names, y)})
    return outs


def _file_entry(path: Path, fmt: str, precision: str, t: Target, runtime_name: str) -> dict:
    size = runtime.file_size(path)
    return {"file": path.name, "format": fmt, "precision": precision, "runtime": runtime_name,
            "size_bytes": size, "size_mb": round(size / 1e6, 3), "sha256": sha256(path),
            "inputs": t.inputs_spec(), "outputs": t.outputs_spec()}


def _feed_tensors(case: Case) -> tuple:
    import torch
    return tuple(torch.from_numpy(v) for v in case.feed.values())


def export_model(t: Target, out: Path, *, int8: bool, progress=None) -> dict:
    """Export one model into `out`; returns its manifest entry (with `failures`)."""
    import onnxruntime
    import torch

    def step(what):
        log.info("%s: %s", t.name, what)
        if progress is not None:
            progress.set_description(f"{t.name}: {what}")
            progress.update(1)

    step("parity inputs")
    cases, cases_src = t.cases("parity")
    refs = [t.reference(*c.ref_args) for c in cases]
    files: list[dict] = []
    work = out / f".work-{t.name}"

    step("TorchScript")
    ts = out / f"{t.name}.torchscript.pt"
    if t.name == "detector":
        shutil.move(t.export_ultralytics("torchscript", work), ts)
        ts_how = "Ultralytics export (torch.jit.trace)"
    else:
        runtime.to_torchscript(t.wrapper(), t.example(), ts)
        ts_how = "torch.jit.trace + freeze, eval mode"
    step("ONNX")
    onnx_path = out / f"{t.name}.onnx"
    meta = {"sketchshop_model": t.name, "version": t.source.get("version"), "labels": json.dumps(t.labels())}
    if t.name == "detector":
        shutil.move(t.export_ultralytics("onnx", work), onnx_path)
        runtime.set_metadata(onnx_path, meta)
        onnx_how = f"Ultralytics export (torch.onnx.export dynamo=False), opset {runtime.OPSET}, onnxslim"
    else:
        runtime.to_onnx(t.wrapper(), t.example(), onnx_path, t.input_names, t.output_names, meta)
        onnx_how = f"torch.onnx.export(dynamo=False), opset {runtime.OPSET}"
    shutil.rmtree(work, ignore_errors=True)

    calib_src, attempts = None, []
    onnx_files = [onnx_path]
    if int8:
        step("int8 calibration")
        calib, calib_src = t.cases("calibration")
        feeds = [c.feed for c in calib]
        fp32_onnx = _run_onnx(onnx_path, cases, t.output_names)
        q = out / f"{t.name}.int8.onnx"
        for strat in t.quant_strategies(onnx_path):  # first one whose parity holds wins
            runtime.quantize_int8(onnx_path, q, feeds, op_types=strat["op_types"], exclude=strat.get("exclude", ()),
                                  weight_type=strat.get("weight_type", "int8"), weight_only=strat.get("weight_only", ()))
            res = t.compare_int8(fp32_onnx, _run_onnx(q, cases, t.output_names), cases, paths=(onnx_path, q))
            attempts.append({"strategy": strat["name"], "failures": res["failures"]})
            log.info("%s int8 (%s): %s", t.name, strat["name"], "; ".join(res["failures"]) or "parity holds")
            if not res["failures"]:
                break
        onnx_files.append(q)
    step("ORT format")
    ort_files = runtime.to_ort(onnx_files, out, ops_config=out / f"{t.name}.required_operators.config")

    step("parity and latency")
    ref_module = t.net if t.name == "detector" else t.wrapper()
    example = _feed_tensors(cases[0])
    pytorch_ms = runtime.torch_latency(ref_module, example)

    e = _file_entry(ts, "torchscript", "fp32", t, f"torch.jit.load (torch {torch.__version__.split('+')[0]})")
    e["how"] = ts_how
    e["parity"] = {"against": "PyTorch eager", **t.compare_fp32(refs, _run_torchscript(ts, cases, t.output_names))}
    e["latency_ms"] = runtime.torch_latency(runtime.load_torchscript(ts), example)
    files.append(e)

    fp32_outs = None
    variants = [(onnx_path, "onnx", "fp32"), (ort_files[0], "ort", "fp32")]
    if int8:
        variants += [(onnx_files[1], "onnx", "int8"), (ort_files[1], "ort", "int8")]
    for path, fmt, prec in variants:
        e = _file_entry(path, fmt, prec, t, f"onnxruntime {onnxruntime.__version__} (CPU EP)")
        outs = _run_onnx(path, cases, t.output_names)
        if prec == "fp32":
            e["how"] = onnx_how if fmt == "onnx" else "onnxruntime.tools.convert_onnx_models_to_ort (Fixed)"
            e["parity"] = {"against": "PyTorch eager", **t.compare_fp32(refs, outs)}
            fp32_outs = fp32_outs or outs
        else:
            e["how"] = (f"onnxruntime static quantisation: QDQ, per-channel int8 weights, uint8 activations, "
                        f"MinMax calibration on {calib_src}; {attempts[-1]['strategy']}"
                        + ("" if fmt == "onnx" else "; then ORT format"))
            e["int8_attempts"] = attempts
            e["parity"] = {"against": f"{t.name}.onnx (fp32)", **t.compare_int8(fp32_outs, outs, cases, paths=(onnx_path, path))}
        e["latency_ms"] = runtime.ort_latency(path, cases[0].feed)
        files.append(e)

    failures = []
    for e in files:
        failures += [f"{e['file']}: {f}" for f in e["parity"].get("failures", []) if e["parity"].get("gated", True)]
    sizes = []
    for (name, prec), limit in SIZE_TARGETS.items():
        if name == t.name:
            for e in files:
                if e["precision"] == prec and e["format"] in ("onnx", "ort"):
                    sizes.append({"file": e["file"], "limit_mb": limit, "size_mb": e["size_mb"],
                                  "met": e["size_mb"] <= limit})
    for s in sizes:
        if not s["met"]:
            log.warning("%s: %.2f MB exceeds the %.1f MB target", s["file"], s["size_mb"], s["limit_mb"])
    ops_cfg = out / f"{t.name}.required_operators.config"
    extra = ([{"file": ops_cfg.name, "format": "ort-operator-config", "size_bytes": runtime.file_size(ops_cfg),
               "sha256": sha256(ops_cfg), "meaning": "operators these ORT files need, for a reduced ONNX Runtime "
                                                     "Mobile build (tools/ci_build/build.py --include_ops_by_config)"}]
             if ops_cfg.is_file() else [])
    return {"name": t.name, "description": t.description, "version": t.source.get("version"), "source": t.source,
            "labels": t.labels(), "parity_inputs": cases_src, "calibration_inputs": calib_src,
            "pytorch_latency_ms": pytorch_ms, "size_targets": sizes, "files": files, "extra_files": extra,
            "ok": not failures, "failures": failures}


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch
    v = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:  # the installed version, without importing it (its import patches PIL.Image.open: detector.ultra)
        v["ultralytics"] = importlib.metadata.version("ultralytics")
    except importlib.metadata.PackageNotFoundError:
        pass
    return v


def export(out, models=MODELS, *, int8: bool = False, weights: dict | None = None, fresh: bool = False,
           data=None) -> dict:
    """Export `models` into directory `out`; returns the manifest. Raises ExportFailed on parity failure.

    `weights`: model name -> checkpoint path (default: the shipped `models/<task>/` files);
    `fresh`: untrained architectures instead of weights (development only, stated in the manifest);
    `data`: real data root (default ../shared/data) for the parity and calibration images.
    """
    from tqdm import tqdm
    out = Path(out)
    unknown = [m for m in models if m not in TARGETS]
    if unknown or not models:
        raise UserError(f"unknown model(s) {unknown or models!r} (choose from {', '.join(MODELS)})")
    weights = weights or {}
    targets = [TARGETS[m](weights.get(m), fresh=fresh, data=data) for m in models]  # fail early on bad weights
    manifest = {"format": FORMAT, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": _versions(), "int8": int8,
                "latency": "median ms of 15 runs after 3 warm-up runs, batch 1, 1 CPU thread, on the export machine",
                "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
                "parity_thresholds": _thresholds(), "models": {}}
    with replaced_dir(out, MANIFEST) as stage:  # an earlier export or an empty folder, never a folder of the user's
        with tqdm(total=len(targets) * (6 + int8), unit="step", mininterval=1) as bar:
            for t in targets:
                manifest["models"][t.name] = export_model(t, stage, int8=int8, progress=bar)
        manifest["ok"] = all(m["ok"] for m in manifest["models"].values())
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
        problems = verify(stage)
        if problems:
            raise ExportFailed("manifest does not match the files: " + "; ".join(problems))
        if not manifest["ok"]:
            failed = out.with_name(out.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            shutil.move(str(stage), failed)
            fails = [f for m in manifest["models"].values() for f in m["failures"]]
            raise ExportFailed(f"parity does not hold ({len(fails)} check(s)); files kept in {failed}:\n  "
                               + "\n  ".join(fails))
    return manifest


def _thresholds() -> dict:
    from . import parity as p
    return {"fp32_vs_pytorch": {"rtol": p.RTOL, "atol": p.ATOL, "top1_agreement": p.FP32_TOP1,
                                "detector_box_iou": p.FP32_BOX_IOU, "colorizer_ssim": p.FP32_SSIM},
            "int8_vs_fp32": {"classifier_top1_agreement": p.INT8_TOP1, "classifier_embedding_cosine_mean": p.INT8_COSINE,
                             "detector_map50_drop": p.INT8_MAP50_DROP, "colorizer_ssim": "reported only"}}


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_manifest(out) -> dict:
    p = Path(out) / MANIFEST
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p}: no manifest (not an export directory)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{p}: unreadable manifest ({e})") from None
    if not isinstance(m, dict) or not isinstance(m.get("models"), dict):
        raise UserError(f"{p}: not a manifest (a JSON object with 'models')")
    return m


def verify(out) -> list[str]:
    """Check an export directory against its manifest: every file listed, present, same size and
    sha256, loadable by its runtime with the listed input/output names and shapes, labels equal to
    the shared vocabulary. Returns the problems (empty = consistent)."""
    from sketchshop import vocab
    out = Path(out)
    m = load_manifest(out)
    problems, listed = [], {MANIFEST}
    if m.get("format") != FORMAT:
        problems.append(f"format {m.get('format')!r} is not {FORMAT}")
    for name, entry in m.get("models", {}).items():
        labels = entry.get("labels", {})
        if name == "classifier" and (labels.get("category") != list(vocab.FINE_CATEGORIES)
                                     or labels.get("colour") != list(vocab.COLOURS)):
            problems.append("classifier labels differ from sketchshop.vocab")
        if name == "detector" and any(c not in vocab.COARSE_CATEGORIES for c in labels.get("category", [])):
            problems.append("detector labels are not coarse categories of sketchshop.vocab")
        for f in entry.get("files", []) + entry.get("extra_files", []):
            listed.add(f["file"])
            p = out / f["file"]
            if not p.is_file():
                problems.append(f"{f['file']}: listed but missing")
                continue
            if runtime.file_size(p) != f["size_bytes"] or sha256(p) != f["sha256"]:
                problems.append(f"{f['file']}: size or sha256 differs from the manifest")
                continue
            if f["format"] in ("onnx", "ort"):
                problems += _check_io_onnx(p, f)
            elif f["format"] == "torchscript":
                problems += _check_torchscript(p)
    for p in out.iterdir():
        if p.name not in listed and p.name != WRITTEN:
            problems.append(f"{p.name}: in the directory but not in the manifest")
    return problems


def _check_io_onnx(p: Path, f: dict) -> list[str]:
    try:
        s = runtime.session(p, 1)
    except Exception as e:
        return [f"{p.name}: onnxruntime cannot load it ({str(e).splitlines()[0][:150]})"]
    got_in = [(i.name, list(i.shape)) for i in s.get_inputs()]
    want_in = [(i["name"], i["shape"]) for i in f["inputs"]]
    got_out = [o.name for o in s.get_outputs()]
    want_out = [o["name"] for o in f["outputs"]]
    probs = []
    if got_in != want_in:
        probs.append(f"{p.name}: inputs {got_in} differ from the manifest {want_in}")
    if got_out != want_out:
        probs.append(f"{p.name}: outputs {got_out} differ from the manifest {want_out}")
    return probs


def _check_torchscript(p: Path) -> list[str]:
    try:
        runtime.load_torchscript(p)
    except Exception as e:
        return [f"{p.name}: torch.jit.load fails ({str(e).splitlines()[0][:150]})"]
    return []
