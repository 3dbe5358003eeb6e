"""The ONNX Runtime copy of a served network: same outputs, cached by key, rebuilt when broken."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchshop.accel import onnx_module
from sketchshop.config import settings


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        f = self.conv(x).mean((2, 3))
        return {"logits": self.fc(f), "feat": f}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKETCHSHOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SKETCHSHOP_RUNTIME", raising=False)
    settings.cache_clear()
    yield tmp_path / "cache" / "onnx"
    settings.cache_clear()


def test_same_outputs_any_batch_and_cached(cache):
    net = Net().eval()
    fast = onnx_module(net, (torch.rand(2, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-a")
    assert fast is not None
    [f] = cache.glob("net-a-*.onnx")
    x = torch.rand(5, 3, 16, 16)  # another batch size than the export's example
    with torch.no_grad():
        ref = net(x)
    got = fast(x)
    for k in ("logits", "feat"):
        np.testing.assert_allclose(got[k].numpy(), ref[k].numpy(), rtol=1e-4, atol=1e-5)
    inode = f.stat().st_ino
    assert onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-a") is not None
    assert f.stat().st_ino == inode  # reused, not rebuilt (a build writes a new file and renames it over)


def test_corrupt_cache_is_rebuilt(cache):
    net = Net().eval()
    assert onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-b")
    [f] = cache.glob("net-b-*.onnx")
    f.write_bytes(b"not an onnx file")
    fast = onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-b")
    assert fast is not None and f.stat().st_size > 1000


def test_stale_cache_of_other_weights_is_not_trusted(cache):
    """A cached file that does not reproduce the loaded weights (a reused key) is replaced."""
    old, new = Net().eval(), Net().eval()
    with torch.no_grad():
        new.fc.weight.mul_(-1)
    assert onnx_module(old, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-c")
    fast = onnx_module(new, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-c")
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(fast(x)["logits"].numpy(), new(x)["logits"].numpy(), rtol=1e-4, atol=1e-5)


def test_cache_keeps_the_last_used_files_of_each_model(cache):
    """Each retraining names a new file: a model's least recently used files go, other models' stay."""
    import os
    net = Net().eval()
    assert onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="other-1")
    for i in range(6):
        assert onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key=f"net-{i}")
        [f] = cache.glob(f"net-{i}-*.onnx")
        os.utime(f, (1000 + i, 1000 + i))  # built in this order, whatever the clock's resolution
        if i == 3:  # the first one loaded again: used after the three built since
            assert onnx_module(net, (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-0")
    assert sorted(p.name.split("-")[1] for p in cache.glob("net-*.onnx")) == ["0", "3", "4", "5"]
    assert len(list(cache.glob("other-*.onnx"))) == 1


def test_torch_runtime_opts_out(cache, monkeypatch):
    monkeypatch.setenv("SKETCHSHOP_RUNTIME", "torch")
    settings.cache_clear()
    assert onnx_module(Net().eval(), (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key="net-d") is None
    assert not cache.exists()


def test_shipped_classifier_same_predictions_in_both_runtimes(shared_data):
    from PIL import Image

    from classifier import Classifier
    clf = Classifier.load()
    assert clf.fast is not None, "the shipped classifier should run in ONNX Runtime"
    eager = Classifier(clf.model, clf.size, clf.colour_mode, clf.meta)
    ims = [Image.open(p).convert("RGB") for p in sorted((shared_data / "clothing-small/validation/skirt").glob("*.jpg"))[:6]]
    a, b = clf.predict(ims), eager.predict(ims)
    assert [x["category"] for x in a] == [x["category"] for x in b]
    for x, y in zip(a, b):
        assert float(np.abs(x["embedding"] - y["embedding"]).max()) < 1e-4
