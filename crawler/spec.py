"""Crawl specs: one YAML file per shop says where to start, what to read and how to map labels.

The format is documented in docs/crawling.md; `load_spec` validates it and names the bad key.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import yaml

from sketchshop import vocab
from sketchshop.errors import UserError, yaml_problem

from .browser import BLOCK_DEFAULT

CURRENCY_SYMBOLS = {"€": "EUR", "£": "GBP", "$": "USD", "¥": "JPY", "CHF": "CHF", "kr": "SEK", "zł": "PLN"}


@dataclass
class Politeness:
    requests_per_second: float = 1.0     # per host, pages and images together
    obey_robots: bool = True
    retries: int = 4
    backoff_s: float = 0.5               # doubled on each retry
    timeout_s: float = 20.0
    user_agent: str | None = None        # default: settings().user_agent


POLITENESS_TYPES = {"requests_per_second": (int, float), "obey_robots": (bool,), "retries": (int,),
                    "backoff_s": (int, float), "timeout_s": (int, float), "user_agent": (str, type(None))}


@dataclass
class PageSpec:
    ready: str                            # CSS: the content is there
    fields: dict[str, dict]
    error: str | None = None              # CSS: the page says loading failed (retry)
    page_complete: str | None = None      # CSS of an element at the very end of the HTML (truncation check)


@dataclass
class ListingSpec(PageSpec):
    card: str = ""
    load_more: str | None = None
    next_page: str | None = None


@dataclass
class AttributeMap:
    name: str                             # vocabulary attribute
    values: dict[str, str | None]         # shop value -> vocabulary value (None: keep raw only)


@dataclass
class Spec:
    name: str
    base_url: str
    start_urls: list[str | dict]          # templates like "/c/{category}", or {url: ..., facets: {...}}
    facets: dict[str, dict[str, str | None]]     # facet -> shop value -> vocabulary value
    listing: ListingSpec
    product_page: PageSpec | None = None
    attributes: dict[str, AttributeMap] = field(default_factory=dict)
    politeness: Politeness = field(default_factory=Politeness)
    block: tuple[str, ...] = BLOCK_DEFAULT
    cookie_banner: str | None = None
    min_image_side: int = 64
    label_fields: dict[str, str] = field(default_factory=dict)   # label -> listing/page field (when no URL facet)
    path: str = ""

    def start_tasks(self) -> list[tuple[str, dict]]:
        """(absolute URL, facet values) for every start URL template x facet combination."""
        out = []
        for tmpl in self.start_urls:
            if isinstance(tmpl, dict):   # an explicit URL with its facet values
                out.append((self.url(tmpl["url"]), dict(tmpl.get("facets") or {})))
                continue
            names = [n for n in re.findall(r"{(\w+)}", tmpl)]
            for combo in itertools.product(*(list(self.facets[n]) for n in names)):
                facet = dict(zip(names, combo))
                out.append((self.url(tmpl.format(**facet)), facet))
        return out

    def url(self, u: str) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", u)

    def needs_product_page(self) -> bool:
        return self.product_page is not None and bool(set(self.product_page.fields) - set(self.listing.fields))


def _req(d: dict, key: str, where: str, kind=str):
    if key not in d or d[key] in (None, ""):
        raise UserError(f"{where}: missing '{key}'")
    if not isinstance(d[key], kind):
        raise UserError(f"{where}: '{key}' must be a {kind.__name__ if isinstance(kind, type) else kind}")
    return d[key]


def _fields(d, where: str) -> dict[str, dict]:
    if not isinstance(d, dict) or not d:
        raise UserError(f"{where}: 'fields' must be a mapping of field name -> selector")
    out = {}
    for k, f in d.items():
        if isinstance(f, str):
            f = {"css": f}
        if not isinstance(f, dict):
            raise UserError(f"{where}.fields.{k}: must be a CSS string or a mapping (css, attr, all, regex, ...)")
        bad = set(f) - {"css", "attr", "all", "regex", "name_attr", "name_css", "value_css"}
        if bad:
            raise UserError(f"{where}.fields.{k}: unknown keys {sorted(bad)}")
        if f.get("regex"):
            try:
                re.compile(f["regex"])
            except re.error as e:
                raise UserError(f"{where}.fields.{k}.regex: {e}") from None
        out[k] = f
    if "id" not in out and "url" not in out and where.endswith("listing"):
        raise UserError(f"{where}.fields: needs 'id' or 'url' (products are keyed by shop + id)")
    return out


def _map_facet(facet: str, mapping, where: str) -> dict[str, str | None]:
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"{where}: facet '{facet}' needs a mapping of shop value -> vocabulary value")
    out = {}
    for shop_value, v in mapping.items():
        try:
            if v is None:
                out[str(shop_value)] = None
            elif facet == "category":
                out[str(shop_value)] = vocab.category(v, allow_coarse=False)
            elif facet == "colour":
                out[str(shop_value)] = vocab.colour(v)
            else:
                out[str(shop_value)] = str(v)
        except vocab.VocabError as e:
            raise UserError(f"{where}.{facet}.{shop_value}: {e}") from None
    return out


MAX_SPEC_BYTES = 1_000_000


def checked_spec_path(path, base_url: str | None = None) -> str:
    """The absolute path of a spec that loads: checked when a crawl is asked for, not when it runs (at 3 am),
    and found by the scheduler whatever directory that runs in."""
    load_spec(path, base_url=base_url)
    return str(Path(path).resolve())


def load_spec(path, base_url: str | None = None) -> Spec:
    """Read and validate a spec. `base_url` points it at the same shop on another host or port."""
    p = Path(path)
    try:
        if p.exists() and (not p.is_file() or p.stat().st_size > MAX_SPEC_BYTES):  # a directory, /dev/zero
            raise UserError(f"{p}: cannot read spec (not a regular file of at most {MAX_SPEC_BYTES:,} bytes)")
        d = yaml.safe_load(p.read_text())
    except OSError as e:
        raise UserError(f"{p}: cannot read spec ({e.strerror})") from None
    except ValueError as e:  # a NUL byte in the path, a file that is not text
        raise UserError(f"{str(path)[:200]!r}: cannot read spec ({e})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({yaml_problem(e)})") from None
    if not isinstance(d, dict):
        raise UserError(f"{p}: a spec is a YAML mapping")
    base = check_base_url(base_url or d.get("base_url"), str(p))
    try:
        return _spec(d, p, base)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:  # a value of the wrong shape
        raise UserError(f"{p}: invalid spec ({type(e).__name__}: {e})") from None


def check_base_url(base, where: str = "base_url", name: str = "base_url", flag: str | None = "--base-url") -> str:
    """`base` if it is an http(s) URL with a host (and a valid port); UserError naming it (`name`, set
    by `flag`) otherwise."""
    try:
        u = urlsplit(base) if isinstance(base, str) else None
        port_ok = u is not None and (u.port is None or u.port > 0)  # .port raises on 99999 and on "[::1"
    except ValueError as e:
        raise UserError(f"{where}: {name} {base!r}: {e}") from None
    if not (u and u.scheme in ("http", "https") and u.hostname and port_ok):
        raise UserError(f"{where}: {name} must be an http(s) URL (got {base!r})"
                        + (f"; set it or pass {flag}" if flag else ""))
    return base


def _spec(d: dict, p: Path, base: str) -> Spec:
    w = str(p)
    facets = {k: _map_facet(k, v, f"{w}: facets") for k, v in (d.get("facets") or {}).items()}
    starts = _req(d, "start_urls", w, list)
    if not starts:
        raise UserError(f"{w}: start_urls is empty: nothing to crawl")
    for s in starts:
        url = s.get("url") if isinstance(s, dict) else s
        if isinstance(url, str) and urlsplit(url).scheme.lower() not in ("", "http", "https"):
            raise UserError(f"{w}: start URL {url[:200]!r}: only http(s) pages or paths on the shop can be crawled")
        if isinstance(s, dict):
            if not s.get("url") or not all(k in facets and str(v) in facets[k] for k, v in (s.get("facets") or {}).items()):
                raise UserError(f"{w}: start URL {s!r}: needs 'url' and facet values listed under 'facets'")
            continue
        if not isinstance(s, str) or not s.strip():
            raise UserError(f"{w}: start URL {s!r}: a URL or path template such as '/c/{{category}}'")
        for n in re.findall(r"{(\w+)}", s):
            if n not in facets:
                raise UserError(f"{w}: start URL {s!r} uses facet '{n}' that 'facets' does not define")
        if set("{}") & set(re.sub(r"{\w+}", "", s)):  # start_tasks fills in {name} and nothing else
            raise UserError(f"{w}: start URL {s!r}: not a template of {{facet}} names")
    L = _req(d, "listing", w, dict)
    listing = ListingSpec(ready=_req(L, "ready", f"{w}: listing"), fields=_fields(L.get("fields"), f"{w}: listing"),
                          error=L.get("error"), page_complete=L.get("page_complete"),
                          card=_req(L, "card", f"{w}: listing"), load_more=L.get("load_more"),
                          next_page=L.get("next_page"))
    pp = None
    if d.get("product_page"):
        P = d["product_page"]
        pp = PageSpec(ready=_req(P, "ready", f"{w}: product_page"),
                      fields=_fields(P.get("fields"), f"{w}: product_page"),
                      error=P.get("error"), page_complete=P.get("page_complete"))
    attrs = {}
    for shop_name, a in (d.get("attributes") or {}).items():
        if not isinstance(a, dict) or a.get("name") not in vocab.ATTRIBUTES:
            raise UserError(f"{w}: attributes.{shop_name}: needs 'name' = one of {', '.join(vocab.ATTRIBUTES)}")
        vals = {}
        for sv, vv in (a.get("values") or {}).items():
            try:
                vals[str(sv)] = None if vv is None else vocab.attribute_value(a["name"], vv)
            except vocab.VocabError as e:
                raise UserError(f"{w}: attributes.{shop_name}.values.{sv}: {e}") from None
        attrs[str(shop_name)] = AttributeMap(a["name"], vals)
    label_fields = d.get("label_fields") or {}
    if not isinstance(label_fields, dict) or any(k not in facets for k in label_fields):
        raise UserError(f"{w}: label_fields maps a facet name (defined in 'facets') to a field name")
    pol = d.get("politeness") or {}
    bad = set(pol) - set(Politeness.__dataclass_fields__)
    if bad:
        raise UserError(f"{w}: politeness: unknown keys {sorted(bad)}")
    politeness = Politeness(**pol)
    for k, v in vars(politeness).items():  # YAML gives any type
        want = POLITENESS_TYPES[k]
        if not isinstance(v, want) or isinstance(v, bool) and bool not in want:
            raise UserError(f"{w}: politeness.{k}: must be {' or '.join(t.__name__ for t in want)}, not {v!r}")
    if not (0 < politeness.requests_per_second <= 100 and 0 <= politeness.retries <= 20
            and 0 < politeness.timeout_s <= 600 and 0 <= politeness.backoff_s <= 60):
        raise UserError(f"{w}: politeness: requests_per_second in (0, 100], retries 0-20, timeout_s in (0, 600], "
                        "backoff_s 0-60")
    return Spec(name=_req(d, "name", w), base_url=base.rstrip("/"), start_urls=[s if isinstance(s, dict) else str(s) for s in starts],
                facets=facets, listing=listing, product_page=pp, attributes=attrs, politeness=politeness,
                block=_block(d.get("browser") or {}, w),
                cookie_banner=d.get("cookie_banner"), min_image_side=int(d.get("min_image_side", 64)),
                label_fields={str(k): str(v) for k, v in label_fields.items()},
                path=str(p.resolve()))


def _block(browser: dict, where: str) -> tuple[str, ...]:
    block = browser.get("block", BLOCK_DEFAULT)
    if isinstance(block, str) or not all(isinstance(b, str) for b in block):
        raise UserError(f"{where}: browser.block is a list of URL patterns such as ['*.woff2']")
    return tuple(block)


def parse_price(text: str | None) -> tuple[float | None, str | None]:
    """'€49.95', '49,95 €', '1.299,00 EUR', '$1,299.00' -> (value, ISO currency or None)."""
    if text is None:
        return None, None
    s = str(text).strip()
    cur = next((code for sym, code in CURRENCY_SYMBOLS.items() if sym in s), None)
    m = re.search(r"\b([A-Z]{3})\b", s)
    cur = cur or (m.group(1) if m else None)
    num = re.sub(r"[^\d.,]", "", s)
    if not num or not re.search(r"\d", num):
        return None, cur
    if "," in num and "." in num:
        dec = "," if num.rfind(",") > num.rfind(".") else "."
    elif "," in num:
        dec = "," if len(num) - num.rfind(",") - 1 in (1, 2) else ""
    else:
        dec = "." if num.count(".") == 1 and len(num) - num.rfind(".") - 1 in (1, 2) else ""
    thousands = {",", "."} - {dec}
    for t in thousands:
        num = num.replace(t, "")
    try:
        return float(num.replace(",", ".")), cur
    except ValueError:
        return None, cur
