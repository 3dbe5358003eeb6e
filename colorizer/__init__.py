"""Colouriser: a small pix2pix that turns a sketch plus a few colour hints into a garment image.

    from colorizer import Colorizer
    col = Colorizer.load()                      # shipped models/colorizer/colorizer.pt
    rgb = col.colorize(sketch, hints=[{"x": 120, "y": 200, "colour": "navy"}], category="dress")

`make_sketch` and `sample_hints` are the project's own sketch and hint generators (used for
training and evaluation, and by anyone who needs a sketch of a photo).
"""
from .data import make_sketch, sample_hints, segment_garment
from .infer import Colorizer

__all__ = ["Colorizer", "make_sketch", "sample_hints", "segment_garment"]
