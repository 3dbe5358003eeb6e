"""`sketchshop train detector` and `sketchshop eval detector` (heavy imports inside the functions)."""
from __future__ import annotations

import logging
from pathlib import Path

from sketchshop.cli import count, number
from sketchshop.errors import UserError

log = logging.getLogger(__name__)

CCP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ccp-train"
SHOTS = CCP.parent / "clothing-small" / "train"


def register(cli):
    from .train import DEFAULTS, MODELS  # light: no torch at import
    p = cli.command("detector", _train, group="train",
                    help="train the YOLO garment detector (CPU, resumable) and export it to ONNX",
                    description="Build the YOLO dataset under the data directory (fixed seeded validation "
                                "split), train with Ultralytics offline, resume from last.pt (the run's folder "
                                "under <data_dir>/detector/runs/ holds best.pt and last.pt). With --install, export "
                                "best.pt to ONNX, evaluate it on the held-out split and write the models folder "
                                "(weights, metrics, card). With its defaults it reproduces the shipped "
                                "models/detector/.")
    p.add_argument("--data", type=Path, default=CCP / "annotations_coco.json",
                   help="COCO json with coarse category names (boxes, and masks for --copy-paste); "
                        "`dataset detect` writes one as DIR/coco.json")
    p.add_argument("--images", type=Path, default=None, help="image folder; default: the json's folder")
    p.add_argument("--model", choices=MODELS, default=DEFAULTS["model"],
                   help="lite0-yolo26: YOLO26 head on a frozen ImageNet EfficientNet-Lite0 trunk; others from scratch")
    p.add_argument("--imgsz", type=count(32, 2048, multiple=32), default=DEFAULTS["imgsz"], help="training and inference size (long side)")
    p.add_argument("--epochs", type=count(1), default=DEFAULTS["epochs"], help="epochs (unless --hours ends it first)")
    p.add_argument("--batch", type=count(1), default=DEFAULTS["batch"])
    p.add_argument("--hours", type=number(0), default=None,
                   help="wall-time budget; training stops (validated, saved) when it runs out")
    p.add_argument("--name", default="default", help="run name under <data_dir>/detector/runs/")
    p.add_argument("--product-shots", type=Path, default=SHOTS,
                   help="class folders of single-product photos added to training, one GrabCut box each")
    p.add_argument("--product-shots-n", type=count(0), default=1000, help="how many of them (0: street photos only)")
    p.add_argument("--studio-products", type=count(0), default=0, metavar="N",
                   help="add N studio product renders (every pattern and colour on shop backdrops), one box each")
    p.add_argument("--copy-paste", type=count(0), default=632, metavar="N",
                   help="add N copy-paste scenes: training photos with garments cut (by their pixel masks) "
                        "from other training photos pasted in, rare classes more often (0: none)")
    p.add_argument("--crawl-data", type=Path, nargs="+", default=[], metavar="DIR",
                   help="`sketchshop dataset detect` outputs (a crawl's product shots and scenes) whose training "
                        "images are added to training")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming last.pt")
    p.add_argument("--init", type=Path, default=None,
                   help="start a fresh run from these Ultralytics weights (e.g. models/detector/detector.pt)")
    p.add_argument("--train-trunk", action="store_true",
                   help="lite0-yolo26: fine-tune the ImageNet trunk too (batch-norm statistics stay frozen)")
    p.add_argument("--lr0", type=number(0), default=None, help="initial learning rate (default: the recipe's)")
    p.add_argument("--threads", type=count(1, 64), default=2, help="torch CPU threads")
    p.add_argument("--install", action="store_true",
                   help="export the result into models/detector/ (detector.onnx, detector.pt, card, metrics)")
    p.add_argument("--head", choices=("one2one", "one2many"), default="one2many",
                   help="YOLO26 head to export: one2many (decoded with NMS; mAP50 0.29 vs 0.23 on the "
                        "held-out split for the first trained model) or one2one (NMS-free)")
    p.add_argument("--export-only", action="store_true",
                   help="skip training: install the run's best.pt as it is (implies --install)")
    p.add_argument("--products", type=Path, default=None,
                   help="with --install: also measure the top-box IoU on these single-product photos")

    e = cli.command("detector", _eval, group="eval",
                    help="mAP on a COCO json, or top-box IoU on single-product photos; writes JSON",
                    description="Runs the ONNX model through the same code the server uses. --coco: COCO "
                                "mAP50, mAP50-95 and per-class AP50 with pycocotools' COCOeval, plus ms per "
                                "image. --products: share of photos whose top box has IoU >= 0.8 with a "
                                "GrabCut foreground box.")
    e.add_argument("--coco", type=Path, help="COCO json with coarse category names")
    e.add_argument("--images", type=Path, help="image folder for --coco (default: the json's folder)")
    e.add_argument("--products", type=Path, help="folder (searched recursively) of single-product photos")
    e.add_argument("--json", type=Path, required=True, help="output JSON")
    e.add_argument("--weights", type=Path, default=None, help="ONNX model (default: the shipped one)")
    e.add_argument("--imgsz", type=count(32, 2048, multiple=32), default=None, help="input size (default: the model's)")
    e.add_argument("--limit", type=count(1), default=None, help="evaluate only this many images")
    e.add_argument("--threads", type=count(1, 64), default=1, help="ONNX Runtime threads")
    e.add_argument("--one-pass", action="store_true",
                   help="--coco: no mirrored second pass for photos of people: the single pass Ultralytics' own "
                        "predict makes (for comparing with figures from before that pass)")
    e.add_argument("--plot", type=Path, default=None, help="also write a per-class AP50 bar chart (PNG)")


def _eval(args) -> int:
    from .evaluate import evaluate_coco, evaluate_products, plot_per_class, write_json
    if bool(args.coco) == bool(args.products):
        raise UserError("give exactly one of --coco JSON or --products DIR")
    if args.coco:
        m = evaluate_coco(args.coco, args.images, weights=args.weights, imgsz=args.imgsz, limit=args.limit,
                          threads=args.threads, one_pass=args.one_pass)
        if args.plot:
            plot_per_class(m, args.plot)
        print(f"mAP50 {m['map50']:.4f}  mAP50-95 {m['map50_95']:.4f}  {m['ms_per_image']:.1f} ms/image  "
              f"({m['n_images']} images)")
    else:
        m = evaluate_products(args.products, weights=args.weights, imgsz=args.imgsz, limit=args.limit,
                              threads=args.threads)
        print(f"top box IoU >= 0.8: {m['top_box_iou_ge_0.8']:.3f} of {m['n_images']} photos "
              f"(no detection: {m['no_detection']}; with the trimmed whole image there: {m['top_item_iou_ge_0.8']:.3f})")
    from sketchshop.registry import weights_used
    write_json({**m, **weights_used("detector", args.weights)}, args.json)
    return 0


def _train(args) -> int:
    from sketchshop.config import settings

    from .data import build_ccp, build_products, build_studio_products
    from .train import run_dir, train
    if not args.data.is_file():
        raise UserError(f"{args.data}: COCO json not found")
    from sketchshop.datasets import read_coco
    if not any(im.boxes for im in read_coco(args.data, args.images or args.data.parent)):  # before minutes of GrabCut
        raise UserError(f"{args.data}: no annotated boxes to train on")
    best = run_dir(args.name) / "weights" / "best.pt"  # what --export-only installs
    if args.export_only and not best.is_file():
        raise UserError(f"{best}: no trained checkpoint for run {args.name!r}")
    extra = []
    for d in args.crawl_data:
        if not ((d / "data.yaml").is_file() and (d / "images" / "train").is_dir()):
            raise UserError(f"{d}: not a `sketchshop dataset detect` output (no data.yaml and images/train)")
        extra.append(d / "images" / "train")
    if args.product_shots_n > 0:
        if not args.product_shots.is_dir():
            raise UserError(f"{args.product_shots}: product photo folder not found (or --product-shots-n 0)")
        extra.append(build_products(args.product_shots, settings().path("detector", "products"), args.product_shots_n))
    if args.studio_products > 0:
        extra.append(build_studio_products(settings().path("detector", "studio"), args.studio_products))
    if args.copy_paste > 0:
        import json

        from .copypaste import build_copy_paste
        from .data import split_ids
        ids = [im["id"] for im in json.loads(args.data.read_text())["images"]]
        extra.append(build_copy_paste(args.data, args.images or args.data.parent, split_ids(ids)[0],
                                      settings().path("detector", "copypaste"), args.copy_paste))
    yaml_path = build_ccp(args.data, args.images or args.data.parent, settings().path("detector", "ccp"), extra_train=extra)
    if not args.export_only:
        best = train(yaml_path, name=args.name, model=args.model, imgsz=args.imgsz, epochs=args.epochs,
                     batch=args.batch, hours=args.hours, threads=args.threads, resume=not args.fresh,
                     init=args.init, train_trunk=args.train_trunk,
                     **({"lr0": args.lr0} if args.lr0 is not None else {}))
    print(f"best checkpoint: {best}")
    if args.install or args.export_only:
        from .export import install
        import sys
        install(best, imgsz=args.imgsz, data_yaml=yaml_path, products_dir=args.products,
                command="sketchshop " + " ".join(sys.argv[1:]), nms_free=args.head == "one2one",
                product_shots={"folder": str(args.product_shots), "n": args.product_shots_n}
                if args.product_shots_n > 0 else None, copy_paste=args.copy_paste,
                studio_products=args.studio_products, crawl_data=[str(d.resolve()) for d in args.crawl_data])
    return 0
