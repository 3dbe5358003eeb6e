"""pix2pix networks, sized for a phone: a ~3 M parameter U-Net generator and a small PatchGAN.

Inputs (N, 9, S, S): sketch ink (1 = stroke, 0 = paper), hint RGB in [-1, 1] (0 where no hint),
hint mask (1 where a hint is), hints spread by normalised convolution (RGB), inside-the-outline
mask (see `data.encode`). Optional category index (0 = unknown, 1.. = vocab.FINE_CATEGORIES)
adds a learned vector at the bottleneck. Output: RGB, nominally [-1, 1] (callers clip), as a
residual on `base(x)` (hint colours spread inside the outline, white outside) whose last layer
starts at zero: with little CPU for training, the model starts from a sensible image and
learns shading, texture and edges on top of it.

Normalisation is batch-norm, used in eval mode (running statistics) at inference, and there is
no dropout: the same input always gives the same output, and an export of the eval-mode graph is
what was evaluated (the pix2pix "test-time batch statistics" trap in the field notes is avoided
on purpose). Decoder: 3x3 conv at the coarse scale, then bilinear upsampling (cheap, no checkerboard).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sketchshop import vocab
from sketchshop.registry import register

IN_CHANNELS = 9
GRAPH_VERSION = 2  # part of the cached ONNX file's name: bump when `forward` changes the exported graph
N_CATEGORIES = len(vocab.FINE_CATEGORIES) + 1


def _down(cin, cout, norm=True):
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _dec(cin, cout):
    """3x3 conv at the coarse resolution, then bilinear x2: a quarter of the cost of conv-after-upsample."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))


class UNetGenerator(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128, 256, 256), categories: int = N_CATEGORIES, head: int = 8):
        super().__init__()
        self.widths = tuple(widths)
        self.downs = nn.ModuleList()
        cin = IN_CHANNELS
        for i, w in enumerate(widths):
            self.downs.append(_down(cin, w, norm=0 < i < len(widths) - 1))
            cin = w
        self.category = nn.Embedding(categories, widths[-1]) if categories else None
        if self.category is not None:
            nn.init.zeros_(self.category.weight)
        outs = list(widths[-2::-1]) + [widths[0]]  # decoder widths, deepest first
        self.ups = nn.ModuleList()
        for i, cout in enumerate(outs):
            self.ups.append(_dec(widths[-1] if i == 0 else outs[i - 1] + widths[-1 - i], cout))
        # full resolution: sees the raw input again so thin strokes and hint dots stay sharp
        self.head = nn.Sequential(nn.Conv2d(outs[-1] + IN_CHANNELS, head, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(head, 3, 3, 1, 1))
        nn.init.zeros_(self.head[-1].weight), nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, category: torch.Tensor | None = None) -> torch.Tensor:
        skips = []
        h = x
        for d in self.downs:
            h = d(h)
            skips.append(h)
        if self.category is not None and category is not None:
            h = h + self.category(category)[:, :, None, None]
        skips.pop()
        for i, u in enumerate(self.ups):
            h = u(h if i == 0 else torch.cat([h, skips.pop()], 1))
        return self.base(x) + self._head(h, x)

    def _head(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`head(cat([h, x]))` with the first conv split by input channels (the same sum): ONNX Runtime's blocked
        convolutions take 16 and 9 input channels but not 25, and that one conv took 1.9 of the network's 6 ms."""
        conv, n = self.head[0], h.shape[1]
        y = F.conv2d(h, conv.weight[:, :n], conv.bias, padding=1) + F.conv2d(x, conv.weight[:, n:], padding=1)
        return self.head[2](self.head[1](y))

    @staticmethod
    def base(x: torch.Tensor) -> torch.Tensor:
        """The starting guess the network refines: spread hint colours inside the outline, white outside."""
        inside = x[:, 8:9]
        return x[:, 5:8] * inside + (1 - inside)


class PatchDiscriminator(nn.Module):
    """PatchGAN on (input, image) pairs: each output logit judges a ~34 px patch."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        layers, cin = [], IN_CHANNELS + 3
        for i, w in enumerate(widths):
            layers.append(_down(cin, w, norm=i > 0))
            cin = w
        layers += [nn.Conv2d(cin, cin, 4, 1, 1, bias=False), nn.BatchNorm2d(cin), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(cin, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x, y):
        return self.net(torch.cat([x, y], 1))


@register("colorizer", "unet-s")
def unet_s(**kw) -> UNetGenerator:
    return UNetGenerator(**kw)


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the conv before it (same outputs, fewer ops). In place."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model.eval()
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return model


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
