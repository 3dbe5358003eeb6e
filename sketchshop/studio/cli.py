"""`sketchshop synth`: render a synthetic studio dataset and/or its contact sheet."""
from __future__ import annotations

from pathlib import Path

from ..cli import count
from ..errors import UserError

EPILOG = """\
Output layout: images/<id>.jpg, sketches/<id>.png, hints/<id>.png (RGBA), masks/<id>.png,
labels.csv (file, category, colour, sleeve, length, pattern, neckline, sketch, hints, mask,
title, brand, price, currency, seed, index), scenes/<id>.jpg, scenes/masks/<id>.png (instance
ids = mask_value in the json) and scenes_coco.json (boxes xywh, RLE masks, coarse categories).
The same --seed always gives byte-identical files, whatever --workers.
Example: sketchshop synth --n 2000 --out var/studio --seed 1
         sketchshop synth --contact-sheet docs/studio-contact-sheet.png"""


def _synth(args) -> int:
    from .writer import contact_sheet, synth
    if args.out is None and args.contact_sheet is None:
        raise UserError("give --out DIR (with --n) to write a dataset, or --contact-sheet PNG")
    if args.out is not None:
        if args.n is None:
            raise UserError("--n is required with --out")
        r = synth(args.n, args.out, args.seed, scenes=args.scenes, size=args.size, workers=args.workers,
                  overwrite=args.overwrite)
        print(f"wrote {r['products']} products and {r['scenes']} scenes ({r['annotations']} boxes) to {r['out']} "
              f"in {r['seconds']:.1f} s: {r['products_per_s']:.1f} products/s "
              f"({r['products_per_s'] * 60:.0f}/min) with {r['workers']} workers at {r['size']} px; "
              f"{r['cpu_ms_per_product']:.0f} ms CPU per product")
    elif args.n is not None:
        raise UserError("--n needs --out DIR")
    if args.contact_sheet is not None:
        p = contact_sheet(Path(args.contact_sheet), args.seed, size=args.size)
        print(f"wrote contact sheet {p}")
    return 0


def register(cli) -> None:
    import argparse
    p = cli.command("synth", _synth, help="render synthetic garment products, sketches, colour hints and scenes",
                    group=None)
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--n", type=count(1), help="number of products (every category and colour once n >= 13)")
    p.add_argument("--out", type=Path, help="output directory (built atomically; must be new or empty)")
    p.add_argument("--seed", type=count(0), default=0, help="random seed (default 0)")
    p.add_argument("--size", type=count(32), default=384, help="product image size in px (default 384; 256-512 typical)")
    p.add_argument("--scenes", type=count(0), default=None, help="number of 640x640 multi-item scenes (default n/5)")
    p.add_argument("--workers", type=count(1), default=2, help="parallel worker processes (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    p.add_argument("--contact-sheet", type=Path, metavar="PNG", help="also (or only) write a contact sheet PNG")
