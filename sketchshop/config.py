"""One configuration object: defaults, then an optional YAML file, then SKETCHSHOP_* variables.

Every path lives under one data directory so a deployment has one thing to back up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import UserError, yaml_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    data_dir: Path = Path("var")            # SKETCHSHOP_DATA_DIR
    db_url: str = ""                        # SKETCHSHOP_DB_URL; default sqlite in data_dir
    models_dir: Path = PROJECT_ROOT / "models"  # SKETCHSHOP_MODELS_DIR: shipped weights
    log_level: str = "INFO"                 # SKETCHSHOP_LOG_LEVEL
    max_upload_mb: float = 10.0             # SKETCHSHOP_MAX_UPLOAD_MB
    max_image_pixels: int = 40_000_000      # SKETCHSHOP_MAX_IMAGE_PIXELS (decompression-bomb guard)
    admin_token: str = ""                   # SKETCHSHOP_ADMIN_TOKEN: admin API disabled when empty
    api_keys: str = ""                      # SKETCHSHOP_API_KEYS: comma-separated; open API when empty
    rate_limit: str = ""                    # SKETCHSHOP_RATE_LIMIT, per API key or client, e.g. "600/minute"
    rate_limit_storage: str = "memory://"   # SKETCHSHOP_RATE_LIMIT_STORAGE, e.g. redis://host:6379
    trusted_proxies: int = 0                # SKETCHSHOP_TRUSTED_PROXIES: reverse proxies in front (their X-Forwarded-*)
    runtime: str = "onnx"                   # SKETCHSHOP_RUNTIME: onnx (ONNX Runtime) or torch, for served networks
    openvino: str = "auto"                  # SKETCHSHOP_OPENVINO: auto (the colouriser in OpenVINO where faster) or off
    cache_dir: Path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sketchshop"  # built files
    user_agent: str = "sketchshop-crawler/0.1 (+https://github.com/sketchshop)"
    extra: dict = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    def path(self, *parts: str) -> Path:
        """A path under the data directory (parents created)."""
        p = self.data_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _coerce(kind, value, source: str):
    try:
        if kind is Path:
            return Path(value)
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{source}={value!r}: not {'an integer' if kind is int else 'a number' if kind is float else 'a path'}") from None
    return value


def _config_file(path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise UserError(f"config file {path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise UserError(f"config file {path}: not valid YAML ({yaml_problem(e)})") from None
    if values is not None and not isinstance(values, dict):
        raise UserError(f"config file {path}: must map setting names to values, not hold a {type(values).__name__}")
    return values or {}


def load_settings(config_file: str | os.PathLike | None = None) -> Settings:
    """Raises UserError naming the file, key or variable that is wrong."""
    s = Settings()
    config_file = config_file or os.environ.get("SKETCHSHOP_CONFIG")
    values, sources = {}, {}
    if config_file:
        values = _config_file(config_file)
        sources = {k: f"{config_file}: {k}" for k in values}
    for f in fields(Settings):
        env = os.environ.get(f"SKETCHSHOP_{f.name.upper()}")
        if env is not None:
            values[f.name], sources[f.name] = env, f"SKETCHSHOP_{f.name.upper()}"
    for k, v in values.items():
        if k not in {f.name for f in fields(Settings)}:
            s.extra[k] = v
            continue
        default = getattr(s, k)
        setattr(s, k, _coerce(Path if isinstance(default, Path) else type(default), v, sources[k]))
    if str(s.runtime).lower() not in ("onnx", "torch"):
        raise UserError(f"{sources.get('runtime', 'runtime')}={s.runtime!r}: onnx (ONNX Runtime) or torch (eager PyTorch)")
    if str(s.openvino).lower() not in ("auto", "off"):
        raise UserError(f"{sources.get('openvino', 'openvino')}={s.openvino!r}: auto or off")
    s.openvino = str(s.openvino).lower()
    # absolute from here on: a relative path would mean another file to any code that resolves it
    # elsewhere (Flask's send_file joins a relative path to the app package's directory)
    for f in fields(Settings):
        if isinstance(getattr(s, f.name), Path):
            setattr(s, f.name, getattr(s, f.name).expanduser().resolve())
    return s


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Process-wide settings (tests call settings.cache_clear() after changing the environment)."""
    return load_settings()
