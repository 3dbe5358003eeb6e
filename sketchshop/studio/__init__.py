"""The synthetic garment studio: procedurally rendered product photos, sketches, colour hints
and multi-item scenes with exact boxes and masks.

It feeds the demo shop, the test fixtures and pre-training for the sketch, colourisation and
detection models; everything is deterministic for a seed and needs no downloaded data.

    render_product(seed, index=0, *, category=None, colour=None, attributes=None, size=384) -> StudioProduct
    generate_products(n, seed=0, *, size=384) -> Iterator[StudioProduct]   # cycles category x colour
    render_scene(seed, n_items=None, size=(640, 640)) -> Scene              # boxes xywh, coarse labels, masks
    synth(n, out, seed=0, *, scenes=None, size=384, workers=2, overwrite=False) -> dict
    contact_sheet(path, seed=0, *, size=384) -> Path
"""
from .products import StudioProduct, generate_products, render_product
from .scenes import Scene, render_scene
from .writer import contact_sheet, synth

__all__ = ["StudioProduct", "Scene", "render_product", "generate_products", "render_scene", "synth",
           "contact_sheet"]
