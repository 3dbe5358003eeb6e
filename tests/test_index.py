"""The search index on synthetic vectors: exact and HNSW, filters, ranking, atomic reloads."""
import numpy as np
import pytest

from catalog.index import Filters, Item, Query, SearchIndex, IndexError_


def _items(n, rng):
    cats = ["t-shirt", "shirt", "pants", "dress"]
    cols = ["red", "blue", "black"]
    return [Item(i, cats[i % 4], cols[i % 3], {"pattern": "solid" if i % 2 else "stripe"},
                 price=float(10 + i % 50), currency="EUR" if i % 5 else "USD", shop=f"shop{i % 2}",
                 dedup_key=f"k{i}") for i in range(n)]


def _vecs(n, d, rng):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("threshold", [10**9, 100])  # exact, then HNSW
def test_self_retrieval_and_filters(tmp_path, threshold):
    rng = np.random.default_rng(0)
    items, vecs = _items(500, rng), _vecs(500, 64, rng)
    SearchIndex.build(tmp_path, items, vecs, hnsw_threshold=threshold)
    idx = SearchIndex.open(tmp_path)
    assert idx.info["kind"] == ("flat" if threshold > 500 else "hnsw")
    hits = idx.search(Query(vecs[42]), top_k=5)
    assert hits[0].product_id == 42 and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    f = Filters(category="top", colour="blue", max_price=40, currency="eur")
    hits = idx.search(Query(vecs[7]), top_k=50, filters=f)
    assert hits, "some products pass the filter"
    for h in hits:
        it = idx.items_by_id(h.product_id)
        assert it.category in ("t-shirt", "shirt") and it.colour == "blue" and it.price <= 40
        assert it.currency == "EUR"


def test_confident_attributes_reorder_and_report_matches(tmp_path):
    v = np.array([[1, 0], [0.95, 0.312]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [Item(1, "pants", "black"), Item(2, "dress", "red")]
    SearchIndex.build(tmp_path, items, v)
    idx = SearchIndex.open(tmp_path)
    q = np.array([1, 0], np.float32)
    assert idx.search(Query(q), top_k=2)[0].product_id == 1  # no attributes: embedding decides
    hits = idx.search(Query(q, category="dress", category_p=0.95, colour="red", colour_p=0.9), top_k=2)
    assert hits[0].product_id == 2 and hits[0].matched == ["category", "colour"]


def test_dedup_across_shops(tmp_path):
    rng = np.random.default_rng(1)
    v = _vecs(3, 8, rng)
    items = [Item(1, "hat", "red", dedup_key="same"), Item(2, "hat", "red", dedup_key="same"),
             Item(3, "hat", "red", dedup_key="other")]
    SearchIndex.build(tmp_path, items, v)
    ids = [h.product_id for h in SearchIndex.open(tmp_path).search(Query(v[0]), top_k=3)]
    assert len(ids) == 2 and 3 in ids


def test_atomic_reload_and_missing_or_corrupt(tmp_path):
    with pytest.raises(IndexError_, match="no search index"):
        SearchIndex.open(tmp_path)
    rng = np.random.default_rng(2)
    SearchIndex.build(tmp_path, _items(10, rng), _vecs(10, 8, rng))
    idx = SearchIndex.open(tmp_path)
    assert idx.reload_if_changed() is idx
    SearchIndex.build(tmp_path, _items(20, rng), _vecs(20, 8, rng))
    new = idx.reload_if_changed()
    assert new is not idx and len(new) == 20 and len(idx) == 10
    (tmp_path / "builds" / new.build_id / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="corrupt"):
        SearchIndex.open(tmp_path)


def test_likely_category_found_beyond_the_embeddings_top_k(tmp_path):
    """300 dresses lie nearer the query than the one pair of pants; a query sure it shows pants
    still gets the pants first (they are added as candidates, then the category term ranks)."""
    rng = np.random.default_rng(2)
    q = np.array([1.0] + [0.0] * 15, np.float32)
    near = q + 0.2 * _vecs(300, 16, rng)
    far = np.array([[0.6, 0.8] + [0.0] * 14], np.float32)
    v = np.concatenate([near, far]).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [Item(i, "dress", "red") for i in range(300)] + [Item(300, "pants", "red")]
    SearchIndex.build(tmp_path, items, v)
    idx = SearchIndex.open(tmp_path)
    assert 300 not in [h.product_id for h in idx.search(Query(q), top_k=10)]
    hits = idx.search(Query(q, category="pants", category_p=0.9, category_probs={"pants": 0.9, "dress": 0.1}), top_k=10)
    assert hits[0].product_id == 300 and "category" in hits[0].matched


def test_likely_colour_found_beyond_the_embeddings_top_k(tmp_path):
    """The embedding barely sees colour: 300 black dresses lie nearer the query than the two red
    ones; a query sure of its red colour still gets the red dresses first."""
    rng = np.random.default_rng(3)
    q = np.array([1.0] + [0.0] * 15, np.float32)
    near = q + 0.2 * _vecs(300, 16, rng)
    far = np.array([[0.6, 0.8] + [0.0] * 14, [0.6, 0.0, 0.8] + [0.0] * 13], np.float32)
    v = np.concatenate([near, far]).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [Item(i, "dress", "black") for i in range(300)] + [Item(300, "dress", "red"), Item(301, "dress", "red")]
    SearchIndex.build(tmp_path, items, v)
    idx = SearchIndex.open(tmp_path)
    probs = {"dress": 0.9, "skirt": 0.1}
    assert {300, 301}.isdisjoint(h.product_id for h in idx.search(Query(q, "dress", 0.9, category_probs=probs)))
    hits = idx.search(Query(q, "dress", 0.9, colour="red", colour_p=0.9, category_probs=probs), top_k=10)
    assert {h.product_id for h in hits[:2]} == {300, 301} and "colour" in hits[0].matched


def test_bench_index_only_flat_and_hnsw(tmp_path, capsys):
    """`sketchshop bench --index-only`: exact search below the HNSW threshold, the served HNSW above it."""
    import json

    from catalog.index import HNSW_THRESHOLD
    from sketchshop.cli import main
    out = tmp_path / "b.json"
    assert main(["bench", "--index-only", "--index-sizes", f"2000,{HNSW_THRESHOLD}", "--dim", "32",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())["index"]
    assert res["2000"]["kind"] == "flat" and res["2000"]["recall@10"] == 1.0
    assert res[str(HNSW_THRESHOLD)]["kind"] == "hnsw" and res[str(HNSW_THRESHOLD)]["recall@10"] >= 0.9
    assert (tmp_path / "b.md").is_file()
    assert main(["bench", "--index-only", "--index-sizes", "10,x"]) == 2
    assert "--index-sizes" in capsys.readouterr().err


def test_demo_rebuilds_an_index_made_by_other_models(data_dir):
    """`sketchshop demo` keeps an index only if it holds every product and was described by today's models."""
    from catalog.search_cli import models_key
    from sketchshop.demo import index_is_current
    rng = np.random.default_rng(4)
    root = data_dir / "index"
    assert not index_is_current(10)
    SearchIndex.build(root, _items(10, rng), _vecs(10, 8, rng), info={"model": models_key()})
    assert index_is_current(10) and not index_is_current(11)
    SearchIndex.build(root, _items(10, rng), _vecs(10, 8, rng), info={"model": "v1-older-weights"})
    assert not index_is_current(10)
