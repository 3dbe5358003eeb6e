"""The ONNX Runtime copy of a served network: same outputs, cached by key, rebuilt when broken."""
from __future__ import annotations

from pathlib import Path

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


# ---- the int8 copy (sketchshop.accel.int8_module) ----

def _feeds(n, seed):
    g = np.random.default_rng(seed)
    return [{"x": g.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(n)]


def _close(ref, got):
    worst = max(float(np.abs(r["feat"] - g["feat"]).max()) for r, g in zip(ref, got))
    return {"max_diff": worst, "why_not": None if worst < 0.05 else f"features differ by {worst:.3f}"}


def _fast(key):
    return onnx_module(Net().eval(), (torch.rand(1, 3, 16, 16),), ("x",), ("logits", "feat"), key=key)


def test_int8_copy_close_cached_and_first_layer_float(cache):
    import onnx

    from sketchshop.accel import int8_module
    fast = _fast("net-q")
    calls = []

    def accept(ref, got):
        calls.append(1)
        return _close(ref, got)

    q = int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), accept, min_speedup=0)
    assert q is not None and q.path.name.endswith(".int8.onnx")
    x = torch.rand(3, 3, 16, 16)
    np.testing.assert_allclose(q(x)["feat"].numpy(), fast(x)["feat"].numpy(), atol=0.05)
    graph = onnx.load(str(q.path)).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    assert [n.op_type for n in graph.node if "x" in n.input] == ["Conv"]  # the layer reading the input stays float
    verdict = q.path.with_suffix(".json")
    assert '"used": true' in verdict.read_text()
    inode = q.path.stat().st_ino
    unmade = lambda: pytest.fail("feeds made for a cached copy")  # noqa: E731
    assert int8_module(fast, unmade, unmade, accept, min_speedup=0) is not None
    assert q.path.stat().st_ino == inode and len(calls) == 1  # reused, not rebuilt nor re-judged


def test_int8_copy_refused_stays_refused(cache, caplog):
    from sketchshop.accel import int8_module
    fast = _fast("net-r")
    calls = []

    def refuse(ref, got):
        calls.append(1)
        return {"why_not": "too far from float"}

    assert int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), refuse) is None
    assert "too far from float" in caplog.text
    assert not list(cache.glob("*.int8.onnx")) and list(cache.glob("net-r-*.int8.json"))
    assert int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), refuse) is None and len(calls) == 1
    # int8 must also pay for itself: a copy 1000x faster than float is never found
    assert int8_module(_fast("net-s"), lambda: _feeds(8, 0), lambda: _feeds(4, 1), _close, min_speedup=1000) is None
    assert "not 1000x faster" in caplog.text


def test_int8_copy_broken_file_is_rebuilt(cache):
    from sketchshop.accel import int8_module
    fast = _fast("net-t")
    q = int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), _close, min_speedup=0)
    q.path.write_bytes(b"not an onnx file")
    q = int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), _close, min_speedup=0)
    assert q is not None and q.path.stat().st_size > 1000
    q.path.with_suffix(".json").write_text("{")
    assert int8_module(fast, lambda: _feeds(8, 0), lambda: _feeds(4, 1), _close, min_speedup=0) is not None


def test_shipped_classifier_colourised_images_in_int8():
    """The colouriser's images run in the int8 copy (where this CPU makes it pay), drawings and photos in float;
    on colourised studio sketches the int8 copy keeps the float network's answers."""
    from classifier import Classifier
    from colorizer import Colorizer
    from sketchshop.studio import render_product
    clf = Classifier.load()
    if clf.fast_int8 is clf.fast:
        pytest.skip(f"int8 not used on this CPU: {Path(clf.fast.path).with_suffix('.int8.json').read_text()}")
    col = Colorizer.load()
    products = [render_product(7, i, size=256) for i in range(24)]  # seeds unlike the calibration's
    coloured = [col.colorize(p.sketch, hints=p.hints, square=True) for p in products]

    def net(fast, ims):
        return fast(torch.stack([clf.preprocess(im) for im in ims]))

    def emb(preds):
        return np.stack([p["embedding"] for p in preds])

    float_only = Classifier(clf.model, clf.size, clf.colour_mode, clf.meta, clf.fast)
    for kind, ims in (("sketch", [p.sketch for p in products[:4]]), ("photo", [p.image for p in products[:4]])):
        np.testing.assert_allclose(emb(clf.predict(ims, kind=kind)), emb(float_only.predict(ims, kind=kind)), atol=1e-5)
    got = emb(clf.predict(coloured, kind="colourised"))
    np.testing.assert_allclose(got, net(clf.fast_int8, coloured)["embedding"].numpy(), atol=1e-5)
    assert np.abs(got - emb(float_only.predict(coloured, kind="colourised"))).max() > 1e-4
    a, b = net(clf.fast_int8, coloured), net(clf.fast, coloured)
    agree = float((a["category_worn"].argmax(1) == b["category_worn"].argmax(1)).float().mean())
    cosine = float((a["embedding"] * b["embedding"]).sum(1).mean())
    assert agree >= 0.9 and cosine >= 0.99, (agree, cosine)


# ---- the OpenVINO copy (sketchshop.accel.openvino_module) ----

def _openvino():
    pytest.importorskip("openvino", reason="OpenVINO is not installed: served networks stay in ONNX Runtime")
    from sketchshop.accel import openvino_module
    return openvino_module


def test_openvino_copy_matches_pytorch_from_any_thread(cache):
    import threading
    openvino_module = _openvino()
    net, x = Net().eval(), torch.rand(3, 3, 16, 16)
    ov = openvino_module(_fast("net-ov"), net, (torch.rand(1, 3, 16, 16),), atol=0.05, min_speedup=0)
    assert ov is not None and ov.precision in ("bf16", "f32")
    with torch.no_grad():
        ref = net(x)
    outs = {}
    threads = [threading.Thread(target=lambda i=i: outs.setdefault(i, ov(x))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 3
    for got in [ov(x), *outs.values()]:  # each thread with its own infer request, one batch size to another
        for k in ("logits", "feat"):
            np.testing.assert_allclose(got[k].numpy(), ref[k].numpy(), atol=0.05)


def test_openvino_copy_refused_when_it_differs_slower_or_switched_off(cache, monkeypatch, caplog):
    openvino_module = _openvino()
    fast, example = _fast("net-ov2"), (torch.rand(1, 3, 16, 16),)
    other = Net().eval()
    with torch.no_grad():
        other.fc.bias += 1.0  # not the network the file holds
    assert openvino_module(fast, other, example, atol=0.05, min_speedup=0) is None
    assert "differ from PyTorch" in caplog.text
    assert openvino_module(fast, Net().eval(), example, atol=0.05, min_speedup=1e6) is None
    from sketchshop.accel import OrtModule
    junk = cache / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    broken = OrtModule(fast.session, fast.input_names, fast.output_names, True, junk)
    assert openvino_module(broken, Net().eval(), example, atol=0.05, min_speedup=0) is None
    assert "junk.onnx stays in ONNX Runtime" in caplog.text
    monkeypatch.setenv("SKETCHSHOP_OPENVINO", "off")
    settings.cache_clear()
    assert openvino_module(fast, Net().eval(), example, atol=0.05, min_speedup=0) is None


def test_openvino_setting_is_checked(monkeypatch):
    from sketchshop.config import load_settings
    from sketchshop.errors import UserError
    monkeypatch.setenv("SKETCHSHOP_OPENVINO", "sometimes")
    with pytest.raises(UserError, match="SKETCHSHOP_OPENVINO"):
        load_settings()


def test_openvino_timing_is_measured_once_per_file_and_thread_count(cache, caplog):
    import json
    import logging
    openvino_module = _openvino()
    caplog.set_level(logging.INFO, logger="sketchshop.accel")
    fast, example = _fast("net-ov3"), (torch.rand(1, 3, 16, 16),)
    assert openvino_module(fast, Net().eval(), example, atol=0.05, min_speedup=0) is not None
    [times] = cache.glob("net-ov3-*.openvino-t*.json")
    measured = json.loads(times.read_text())
    assert set(measured) == {"onnxruntime_ms", "openvino_ms", "precision"}
    times.write_text(json.dumps({**measured, "openvino_ms": 1e6}))  # read back, not measured again
    assert openvino_module(fast, Net().eval(), example, atol=0.05, min_speedup=1) is None
    assert "not 1x faster here (1000000.00" in caplog.text
    times.write_text("not json")  # a broken file is measured again
    assert openvino_module(fast, Net().eval(), example, atol=0.05, min_speedup=0) is not None
    assert json.loads(times.read_text())["openvino_ms"] < 1e6
