"""What one server process loads once: the models, the index and the catalogue.

Loading happens in `create_app` (once per gunicorn worker). When anything is missing or
corrupt the process stays up, `/readyz` answers 503 with the reasons, and endpoints that
need the missing part answer 503 instead of serving half-loaded.
"""
from __future__ import annotations

import logging
import threading

from sketchshop.errors import UserError

from .errors import ApiError

log = logging.getLogger(__name__)


class State:
    def __init__(self):
        self.searcher = None
        self.catalog = None
        self.problems: dict[str, str] = {}
        self._lock = threading.Lock()
        self._models_key = None   # what the loaded models would write in an index's build.json
        self._refused = None      # an index build found unusable (no need to read it again)

    def load(self, *, searcher=None, catalog=None) -> "State":
        self.searcher, self.catalog = searcher, catalog
        if self.catalog is None:
            try:
                from catalog import Catalog
                self.catalog = Catalog()
            except (UserError, ImportError) as e:
                self.problems["catalog"] = str(e)
        if self.searcher is None:
            try:
                from catalog.search import Searcher
                from catalog.search_cli import models_key
                self.searcher = Searcher.load(with_index=False)
                self.searcher.warm_up()
                self._models_key = models_key()
            except (UserError, ImportError) as e:
                self.problems["models"] = str(e)
            else:  # without an index only /v1/search waits: classify, detect and colorize need none
                self._open_index()
        for k, v in self.problems.items():
            log.error("not ready: %s: %s", k, v)
        return self

    @property
    def ready(self) -> bool:
        return not self.problems and self.searcher is not None and self.catalog is not None

    def need_searcher(self):
        if self.searcher is None:
            raise ApiError(503, "not_ready", "models are not loaded: " + "; ".join(self.problems.values()))
        self.refresh_index()
        return self.searcher

    def _open_index(self) -> None:
        """Open the index's current build unless it is the one already refused (builds never change)."""
        from catalog.index import SearchIndex
        from catalog.search_cli import stale_index
        from sketchshop.config import settings
        root = settings().data_dir / "index"
        current = SearchIndex.current_build_of(root)
        if current is not None and current == self._refused:
            return
        try:
            index = SearchIndex.open(root)
            if stale := stale_index(index, self._models_key):
                raise UserError(stale)
        except UserError as e:
            self._refused = current
            if self.searcher.index is None:
                self.problems["index"] = str(e)
            else:
                log.error("new index build could not be loaded, keeping the old one: %s", e)
            return
        self.searcher.index = index
        self.problems.pop("index", None)

    def refresh_index(self):
        """Pick up a new index build (a crawl's reindex, or the first one), atomically; None without one."""
        if self.searcher is None:
            return None
        with self._lock:
            index = self.searcher.index
            if index is None or index.current_build() not in (None, index.build_id):
                self._open_index()
        return self.searcher.index

    def need_catalog(self):
        if self.catalog is None:
            raise ApiError(503, "not_ready", "catalogue is not available: " + self.problems.get("catalog", ""))
        return self.catalog
