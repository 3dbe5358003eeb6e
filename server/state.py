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
                self.searcher = Searcher.load(with_index=False)
                self.searcher.warm_up()
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
        from catalog.index import SearchIndex
        from sketchshop.config import settings
        try:
            self.searcher.index = SearchIndex.open(settings().data_dir / "index")
            self.problems.pop("index", None)
        except UserError as e:
            self.problems["index"] = str(e)

    def refresh_index(self):
        """Pick up a new index build (a crawl's reindex, or the first one), atomically; None without one."""
        if self.searcher is None:
            return None
        with self._lock:
            if self.searcher.index is None:
                self._open_index()
            else:
                try:
                    self.searcher.index = self.searcher.index.reload_if_changed()
                except UserError as e:
                    log.error("new index build could not be loaded, keeping the old one: %s", e)
        return self.searcher.index

    def need_catalog(self):
        if self.catalog is None:
            raise ApiError(503, "not_ready", "catalogue is not available: " + self.problems.get("catalog", ""))
        return self.catalog
