"""`sketchshop export`: the phone's model files, checked against PyTorch, with a manifest.

Heavy imports (torch, onnxruntime, ultralytics) happen inside the command function.
"""
from __future__ import annotations

MODELS = ("classifier", "detector", "colorizer")  # mirrors mobile_export.export.MODELS without importing torch


def _models(text: str) -> tuple[str, ...]:
    from sketchshop.errors import UserError
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        raise UserError(f"--models: unknown model(s) {bad or text!r} (choose from {', '.join(MODELS)})")
    return names


def cmd_export(args) -> int:
    import sys

    from .export import ExportFailed, export, verify
    if args.verify:
        problems = verify(args.out)
        for p in problems:
            print(f"problem: {p}", file=sys.stderr)
        print(f"{args.out}: {'consistent with its manifest' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    models = _models(args.models)
    weights = {m: getattr(args, f"{m}_weights") for m in models if getattr(args, f"{m}_weights")}
    try:
        m = export(args.out, models, int8=args.int8, weights=weights, fresh=args.untrained, data=args.data)
    except ExportFailed as e:
        print(f"sketchshop: export failed: {e}", file=sys.stderr)
        return 1
    print(summary(m))
    print(f"wrote {args.out}/manifest.json")
    return 0


def summary(manifest: dict) -> str:
    """A table of every file: size, latency, the headline parity number."""
    rows = [f"{'file':34} {'MB':>7} {'ms (1 thr)':>10}  parity"]
    for name, m in manifest["models"].items():
        rows.append(f"{name + ' (PyTorch eager)':34} {'':>7} {m['pytorch_latency_ms']:>10.2f}")
        for f in m["files"]:
            rows.append(f"{f['file']:34} {f['size_mb']:>7.2f} {f['latency_ms']:>10.2f}  {_headline(f['parity'])}")
    return "\n".join(rows)


def _headline(p: dict) -> str:
    keys = ("top1_agreement_category", "embedding_cosine_mean", "min_iou", "map50_drop", "ssim_min")
    bits = [f"{k}={p[k]:.4f}" for k in keys if isinstance(p.get(k), (int, float))]
    if "outputs" in p:
        bits.append(f"max_abs_diff={max(o['max_abs_diff'] for o in p['outputs']):.2e}")
    return ("FAIL " if p.get("failures") else "ok ") + " ".join(bits)


def register(cli) -> None:
    p = cli.command(
        "export", cmd_export, group=None,
        help="export the models for phones: TorchScript, ONNX, ORT format, int8; checked against PyTorch",
        description="Export each model to TorchScript (.torchscript.pt), ONNX (opset 17, legacy exporter), ORT "
                    "format (.ort, for ONNX Runtime Mobile) and, with --int8, static int8 ONNX/ORT calibrated on "
                    "real training photos. Every file is run on held-out real photos and drawings and compared "
                    "with PyTorch (fp32: allclose rtol 1e-3/atol 1e-5 and top-1 100%, detector box IoU >= 0.99, "
                    "colouriser SSIM >= 0.99; int8: classifier top-1 >= 98% and embedding cosine >= 0.98, "
                    "detector mAP50 drop <= 0.02). manifest.json lists inputs, preprocessing, outputs, labels, "
                    "size, sha256, 1-thread latency and parity of every file. Exit 1 when parity fails (the "
                    "files then go to OUT.failed/ and an existing OUT is left untouched). See docs/android.md.")
    p.add_argument("--out", required=True, help="output directory, replaced whole and atomically on success (it "
                                                 "then holds the --models exported now, no others)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS)
                   + " (to update one model of an existing export, export all of them again)")
    p.add_argument("--int8", action="store_true", help="also write static int8 ONNX and ORT files (slower)")
    for m in MODELS:
        p.add_argument(f"--{m}-weights", metavar="PATH",
                       help=f"{m} checkpoint (default: the shipped models/{m}/ file"
                            + (", the Ultralytics .pt)" if m == "detector" else ")"))
    p.add_argument("--data", help="real data root for parity/calibration images (default ../shared/data; "
                                  "studio renders are used when absent, and the manifest says so)")
    p.add_argument("--untrained", action="store_true",
                   help="export freshly constructed, untrained architectures (to test the pipeline only)")
    p.add_argument("--verify", action="store_true",
                   help="do not export: check an existing OUT against its manifest (files, sha256, inputs/outputs)")
