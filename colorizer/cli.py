"""`sketchshop train colorizer` and `sketchshop eval colorizer` (torch is imported inside the commands)."""
from __future__ import annotations

import json
import sys

from sketchshop.cli import count, number


def _train(args) -> int:
    from sketchshop.errors import UserError

    from .train import run_dir, train
    if args.epochs < 1 or args.batch < 2 or args.size % 64 or args.crop % 64:
        raise UserError("need --epochs >= 1, --batch >= 2, and --size/--crop multiples of 64")
    meta = train(args.data, size=args.size, epochs=args.epochs, crop=args.crop, full_epochs=args.full_epochs,
                 batch=args.batch, lr=args.lr, l1=args.l1, ssim=args.ssim, adv=args.adv, epoch_size=args.epoch_size or None,
                 max_minutes=args.max_minutes, threads=args.threads, workers=args.workers, seed=args.seed, out=args.out,
                 resume=not args.no_resume, max_photos=args.max_photos, studio=args.studio, init=args.init)
    print(f"trained {meta['epochs']} epochs; weights {args.out or run_dir() / 'colorizer.pt'}; "
          f"samples, metrics.json and checkpoint in {run_dir()}")
    return 0


def _eval(args) -> int:
    from .evaluate import evaluate, write_json
    res = evaluate(args.images, hints=args.hints, seed=args.seed, weights=args.weights, limit=args.limit,
                   use_category=args.use_category, sheet=args.sheet)
    from sketchshop.registry import weights_used
    res.update(weights_used("colorizer", args.weights))
    write_json(res, args.json)
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


def register(cli) -> None:
    p = cli.command("colorizer", _train, group="train",
                    help="train the pix2pix colouriser (sketch + colour hints -> garment image)",
                    description="Train the pix2pix colouriser on photos (ImageFolder or flat folders). Garments "
                                "are cut out and sketched once (cached under the data dir), hints resampled every "
                                "epoch. Resumes from var/train/colorizer/checkpoint.pt; writes a sample grid per "
                                "epoch, metrics.json and colorizer.pt there.")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="photo folders (class subfolders allowed); RGBA cut-outs use their alpha as the mask")
    p.add_argument("--size", type=count(32), default=256, help="canvas size in px")
    p.add_argument("--epochs", type=count(1), default=40, help="epochs (the last --full-epochs on the full canvas)")
    p.add_argument("--epoch-size", type=count(0), default=512, help="pairs per epoch (0 = all)")
    p.add_argument("--crop", type=count(16), default=128, help="random crop size for the early epochs")
    p.add_argument("--full-epochs", type=count(0), default=6, help="final epochs on the full canvas")
    p.add_argument("--batch", type=count(1), default=16, help="batch size (a quarter of it on the full canvas)")
    p.add_argument("--lr", type=number(0), default=2e-4, help="Adam learning rate (beta1 0.5)")
    p.add_argument("--l1", type=number(0), default=100.0, help="L1 loss weight")
    p.add_argument("--ssim", type=number(0), default=10.0, help="(1 - SSIM) loss weight")
    p.add_argument("--adv", type=number(0), default=1.0, help="adversarial (LSGAN) loss weight")
    p.add_argument("--max-minutes", type=number(0), default=None, help="time budget; the last 30%% goes to full-canvas epochs")
    p.add_argument("--max-photos", type=count(1), default=None, help="train on a seeded random subset of the photos")
    p.add_argument("--studio", type=count(0), default=0, metavar="N", help="add N rendered studio products (exact masks)")
    p.add_argument("--threads", type=count(1, 64), default=2, help="torch CPU threads")
    p.add_argument("--workers", type=count(0), default=0, help="data loader processes (sketch and hint drawing)")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--out", default=None, help="weights file (default var/train/colorizer/colorizer.pt)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start a new run's generator from these colouriser weights (e.g. the shipped model)")

    p = cli.command("colorizer", _eval, group="eval",
                    help="score the colouriser on real photos (SSIM, PSNR, colour error, speed)",
                    description="For each photo under DIR: cut out the garment, make the project's sketch, sample "
                                "N hint dots with the seed, colour it and compare on the garment region at 256 px. "
                                "Writes {n, ssim, psnr, colour_delta_e, ms_per_image} to --json, plus reference_ssim: the "
                                "scores of the photo itself blurred (sigma 1/2/4 px) or filled with its mean colour.")
    p.add_argument("--images", required=True, metavar="DIR", help="photos (class subfolders allowed)")
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the scores")
    p.add_argument("--hints", type=count(0), default=30, help="hint dots per garment (0 = none)")
    p.add_argument("--seed", type=count(0), default=0, help="seed for the hint positions")
    p.add_argument("--weights", default=None, help="weights file (default: the shipped model)")
    p.add_argument("--limit", type=count(1), default=None, help="only the first N photos")
    p.add_argument("--use-category", action="store_true", help="pass the class folder as the category")
    p.add_argument("--sheet", default=None, metavar="PNG", help="also write a contact sheet of the first rows")
