"""The synthetic garment studio: procedurally rendered product photos, sketches, colour hints
and multi-item scenes with exact boxes and masks.

It feeds the demo shop, the test fixtures and pre-training for the sketch, colourisation and
detection models; everything is deterministic for a seed and needs no downloaded data.
"""
from .products import StudioProduct, generate_products, render_product
from .scenes import Scene, render_scene
from .writer import contact_sheet, synth

__all__ = ["StudioProduct", "Scene", "render_product", "generate_products", "render_scene", "synth",
           "contact_sheet"]
