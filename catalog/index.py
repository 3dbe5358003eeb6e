"""The search index: one embedding and attribute record per catalogue product.

Layout under `<data_dir>/index/`: `builds/<id>/` holds `vectors.faiss` (FAISS: exact
inner-product below `HNSW_THRESHOLD` vectors, HNSW above), `items.json` (the attributes and
filterable fields of each row) and `build.json`; the file `CURRENT` names the live build.
A new build is written beside the live one and `CURRENT` is swapped atomically, so a server
that checks `CURRENT` (`SearchIndex.reload_if_changed`) never sees a half-built index.

Ranking (each term in [0, 1] except the similarity, which is a cosine in [-1, 1]; the weights w
are `WEIGHTS` below):

    score = w.similarity * cosine(query, product) + w.category * category
          + w.colour * agree(colour) + w.attributes * mean agree(attribute)

`category` is the query's probability that the product's category is right: P(fine) plus half
of the rest of P(coarse), from the query's top-k category probabilities (so an unsure
shirt-or-longsleeve query still ranks every top above trousers). `agree(x) = p * match +
(1 - p) * 0.5`, where `p` is the query's confidence in its predicted value and `match` is 1 for
the same value, 0 otherwise: a confident prediction pulls matching products up, an unsure one
leaves the ranking to the embedding. Attributes count only where both sides have them (0.5
otherwise). Hard filters (category, colour, price range, shop, currency) are applied before
ranking, and products sharing a de-duplication key (the same image hash, or the same brand and
title across shops) are returned once.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sketchshop import vocab
from sketchshop.errors import UserError

log = logging.getLogger(__name__)

HNSW_THRESHOLD = 50_000
# HNSW graph: M 32, efConstruction 200, efSearch 1024. On clustered 256-d vectors (`sketchshop bench
# --index-only`), efConstruction 80 / efSearch 128 reached recall@10 0.893 at 60k vectors; at 1M vectors
# efSearch 256 / 512 / 1024 / 2048 reach 0.807 / 0.895 / 0.960 / 0.995 at 0.48 / 0.78 / 1.41 / 4.35 ms p50.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 200, 1024
# Category first, then colour, then look-alike: a user who photographs red trousers wants red trousers
# before grey ones that look closer. Chosen with `sketchshop eval search` on the demo catalogue, queried
# with clothing-small/validation photos and 130 held-out studio products: 0.45/0.35/0.12/0.08 gave
# category P@10 0.883 (real photos) and colour P@10 0.31 (studio photos); these give 0.928 and 0.64.
WEIGHTS = {"similarity": 0.15, "category": 0.5, "colour": 0.3, "attributes": 0.05}


class IndexError_(UserError):
    status = 503
    code = "index_unavailable"


@dataclass
class Item:
    product_id: int
    category: str | None
    colour: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    price: float | None = None
    currency: str | None = None
    shop: str | None = None
    dedup_key: str | None = None
    display: dict = field(default_factory=dict)  # title, brand, url, image: what a result card shows


@dataclass
class Query:
    embedding: np.ndarray
    category: str | None = None
    category_p: float = 0.0
    colour: str | None = None
    colour_p: float = 0.0
    attributes: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (value, p)
    category_probs: dict[str, float] = field(default_factory=dict)          # top-k fine categories

    def category_score(self, cat: str) -> float:
        """P(the product's category is right) from the top-k, or agree() on the top-1 alone."""
        if not self.category_probs:
            if not self.category:
                return 0.5
            same = 1.0 if cat == self.category else 0.5 if vocab.coarse(cat) == vocab.coarse(self.category) else 0.0
            return _agree(self.category_p, same)
        fine = self.category_probs.get(cat, 0.0)
        co = vocab.FINE_TO_COARSE.get(cat, cat)
        same_coarse = sum(p for c, p in self.category_probs.items() if vocab.FINE_TO_COARSE.get(c, c) == co)
        return fine + 0.5 * (same_coarse - fine)


@dataclass
class Filters:
    category: str | None = None   # fine or coarse
    colour: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    shop: str | None = None
    currency: str | None = None

    def active(self) -> bool:
        return any(v is not None for v in vars(self).values())


@dataclass
class Hit:
    product_id: int
    score: float
    similarity: float
    matched: list[str]


def _faiss():
    import faiss
    return faiss


def add_vectors(index, vectors: np.ndarray, chunk: int = 20_000) -> None:
    """`index.add` in chunks behind a progress bar: an HNSW build of 1M vectors takes minutes."""
    from tqdm import tqdm
    with tqdm(total=len(vectors), desc="adding vectors", unit="vec", disable=len(vectors) <= chunk) as bar:
        for i in range(0, len(vectors), chunk):
            index.add(vectors[i:i + chunk])
            bar.update(min(chunk, len(vectors) - i))


def _agree(p: float, match: float) -> float:
    return p * match + (1.0 - p) * 0.5


class SearchIndex:
    def __init__(self, root: Path, build_id: str, index, items: list[Item], info: dict):
        self.root, self.build_id, self.index, self.items, self.info = root, build_id, index, items, info
        self.dim = index.d
        cats = [it.category for it in items]
        self._cat = np.array([c or "" for c in cats])
        self._coarse = np.array([vocab.FINE_TO_COARSE.get(c, c) if c else "" for c in cats])
        self._colour = np.array([it.colour or "" for it in items])
        self._price = np.array([np.nan if it.price is None else it.price for it in items], dtype=np.float64)
        self._shop = np.array([it.shop or "" for it in items])
        self._currency = np.array([(it.currency or "").upper() for it in items])
        self._attr = {a: np.array([it.attributes.get(a, "") for it in items]) for a in vocab.ATTRIBUTES}
        self._vectors = None  # reconstructed lazily for filtered exact search
        self._by_id = {it.product_id: it for it in items}

    # ---- building ----
    @staticmethod
    def build(root, items: list[Item], vectors: np.ndarray, *, hnsw_threshold: int = HNSW_THRESHOLD,
              info: dict | None = None) -> str:
        """Write a new build under `root` and make it current. Returns the build id."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(items) != len(vectors):
            raise ValueError("one vector per item")
        root = Path(root)
        build_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
        tmp = root / "builds" / f".{build_id}.tmp"
        tmp.mkdir(parents=True)
        d = vectors.shape[1] if vectors.ndim == 2 else 0
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        if len(vectors) >= hnsw_threshold:
            index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(d)
            kind = "flat"
        if len(vectors):
            add_vectors(index, vectors)
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        (tmp / "items.json").write_text(json.dumps([vars(it) for it in items]))
        meta = {"build_id": build_id, "n": len(items), "dim": d, "kind": kind, "created": time.time(),
                **(info or {})}
        (tmp / "build.json").write_text(json.dumps(meta, indent=1))
        final = root / "builds" / build_id
        tmp.rename(final)
        cur_tmp = root / ".CURRENT.tmp"
        cur_tmp.write_text(build_id)
        os.replace(cur_tmp, root / "CURRENT")
        SearchIndex._prune(root, keep=build_id)
        log.info("index build %s: %d products, %d-d, %s", build_id, len(items), d, kind)
        return build_id

    @staticmethod
    def _prune(root: Path, keep: str, n_keep: int = 2) -> None:
        import shutil
        builds = sorted(p for p in (root / "builds").iterdir() if not p.name.startswith("."))
        for p in builds[:-n_keep]:
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)

    # ---- loading ----
    @classmethod
    def open(cls, root) -> "SearchIndex":
        root = Path(root)
        cur = root / "CURRENT"
        if not cur.is_file():
            raise IndexError_(f"no search index at {root} (run `sketchshop index build`)")
        build_id = cur.read_text().strip()
        d = root / "builds" / build_id
        faiss = _faiss()
        try:
            try:
                index = faiss.read_index(str(d / "vectors.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                index = faiss.read_index(str(d / "vectors.faiss"))
            items = [Item(**r) for r in json.loads((d / "items.json").read_text())]
            info = json.loads((d / "build.json").read_text())
        except (OSError, RuntimeError, ValueError, TypeError) as e:
            raise IndexError_(f"search index {d} is missing or corrupt ({e})") from None
        if index.ntotal != len(items):
            raise IndexError_(f"search index {d} is corrupt: {index.ntotal} vectors for {len(items)} items")
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = HNSW_EF_SEARCH
        faiss.omp_set_num_threads(1)  # one query at a time: threads only add overhead (and p99)
        return cls(root, build_id, index, items, info)

    def current_build(self) -> str | None:
        return self.current_build_of(self.root)

    @staticmethod
    def current_build_of(root) -> str | None:
        """The build id `CURRENT` names under `root`, None without one."""
        try:
            return (Path(root) / "CURRENT").read_text().strip()
        except OSError:
            return None

    def reload_if_changed(self) -> "SearchIndex":
        """The newest build if `CURRENT` moved on, else self (one stat-sized read per call)."""
        cur = self.current_build()
        return SearchIndex.open(self.root) if cur and cur != self.build_id else self

    def __len__(self) -> int:
        return len(self.items)

    # ---- searching ----
    def _mask(self, f: Filters) -> np.ndarray:
        m = np.ones(len(self.items), dtype=bool)
        if f.category:
            c = vocab.category(f.category)
            m &= (self._cat == c) if c in vocab.FINE_CATEGORIES and c not in vocab.COARSE_CATEGORIES \
                else (self._coarse == vocab.FINE_TO_COARSE.get(c, c))
        if f.colour:
            m &= self._colour == vocab.colour(f.colour)
        if f.min_price is not None:
            m &= self._price >= f.min_price
        if f.max_price is not None:
            m &= self._price <= f.max_price
        if f.shop:
            m &= self._shop == f.shop
        if f.currency:
            m &= self._currency == f.currency.upper()
        return m

    def _vectors_all(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else \
                np.zeros((0, self.dim), np.float32)
        return self._vectors

    def _candidates(self, q: np.ndarray, k: int, f: Filters) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.items)
        if not n:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if f.active():
            mask = self._mask(f)
            sel = np.flatnonzero(mask)
            if len(sel) <= HNSW_THRESHOLD or not hasattr(self.index, "hnsw"):
                sims = self._vectors_all()[sel] @ q
                top = np.argsort(-sims)[:k]
                return sel[top], sims[top]
            kk = min(n, k * max(4, int(n / max(len(sel), 1))))
        else:
            mask, kk = None, min(n, k)
        sims, ids = self.index.search(q[None, :].astype(np.float32), kk)
        ids, sims = ids[0], sims[0]
        keep = ids >= 0
        if mask is not None:
            keep &= mask[np.clip(ids, 0, n - 1)]
        return ids[keep][:k], sims[keep][:k]

    def search(self, query: Query, top_k: int = 10, filters: Filters | None = None) -> list[Hit]:
        filters = filters or Filters()
        q = np.asarray(query.embedding, dtype=np.float32).ravel()
        if q.shape[0] != self.dim:
            raise UserError(f"query embedding has {q.shape[0]} dimensions, the index {self.dim}")
        ids, sims = self._candidates(q, max(top_k * 10, 100), filters)
        ids, sims = self._with_likely_matches(q, ids, sims, query, max(top_k * 10, 100), filters)
        score = WEIGHTS["similarity"] * sims.astype(np.float64) + WEIGHTS["category"] * self._category_term(query, ids) \
            + WEIGHTS["colour"] * _agree(query.colour_p if query.colour else 0.0, self._colour[ids] == query.colour) \
            + WEIGHTS["attributes"] * self._attribute_term(query, ids)
        out, seen = [], set()
        for j in np.argsort(-score, kind="stable").tolist():
            it = self.items[ids[j]]
            if it.dedup_key and it.dedup_key in seen:
                continue
            seen.add(it.dedup_key)
            out.append(Hit(it.product_id, float(score[j]), float(sims[j]), self._matched(query, it)))
            if len(out) == top_k:
                break
        return out

    def _category_term(self, query: Query, ids: np.ndarray) -> np.ndarray:
        cats = self._cat[ids]
        term = np.full(len(ids), 0.5)
        for c in np.unique(cats):
            if c:
                term[cats == c] = query.category_score(c)
        return term

    def _attribute_term(self, query: Query, ids: np.ndarray) -> np.ndarray:
        total, count = np.zeros(len(ids)), np.zeros(len(ids))
        for a, (v, p) in query.attributes.items():
            col = self._attr.get(a)
            if col is None:
                continue
            vals = col[ids]
            have = vals != ""
            total += have * _agree(p, vals == v)
            count += have
        return np.where(count > 0, total / np.maximum(count, 1), 0.5)

    @staticmethod
    def _matched(query: Query, it: Item) -> list[str]:
        qcoarse = vocab.FINE_TO_COARSE.get(query.category, query.category) if query.category else None
        matched = []
        if query.category and it.category and (
                it.category == query.category or vocab.FINE_TO_COARSE.get(it.category) == qcoarse):
            matched.append("category")
        if query.colour and it.colour == query.colour:
            matched.append("colour")
        return matched + [a for a, (v, _) in query.attributes.items() if it.attributes.get(a) == v]
    def _with_likely_matches(self, q, ids, sims, query: Query, k: int, filters: Filters):
        """Add the nearest items of each likely coarse category (p >= 0.2), and of that category in
        the query's colour, to the candidates.

        A photo and a catalogue image can be nearer across categories than within one (a dark
        skirt photo next to dark trousers on white), and the embedding, trained to put a sketch
        next to its photo, barely sees colour: the embedding's top-k alone may hold too few items
        of the right category and colour for the ranking's category and colour terms to promote.
        """
        if filters.category or not query.category_probs:
            return ids, sims
        coarse: dict[str, float] = {}
        for c, p in query.category_probs.items():
            co = vocab.FINE_TO_COARSE.get(c, c)
            coarse[co] = coarse.get(co, 0.0) + p
        likely = [c for c, p in sorted(coarse.items(), key=lambda x: -x[1]) if p >= 0.2][:2]
        if not likely:
            return ids, sims
        narrowed = [replace(filters, category=c) for c in likely]
        if query.colour and not filters.colour:
            narrowed += [replace(f, colour=query.colour) for f in narrowed]
        parts = [(ids, sims)] + [self._candidates(q, k, f) for f in narrowed]
        all_ids, all_sims = np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
        _, first = np.unique(all_ids, return_index=True)
        return all_ids[first], all_sims[first]

    def items_by_id(self, product_id: int) -> Item:
        return self._by_id[product_id]
