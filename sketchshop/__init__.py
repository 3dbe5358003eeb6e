"""sketchshop: draw it or snap it, then buy it.

The shared package: vocabulary, configuration, image loading, dataset readers, the model
registry, the synthetic garment studio and the command line.
"""
__version__ = "0.1.0"
