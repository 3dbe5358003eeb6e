"""The OpenAPI spec is valid, and fuzzing every operation of it never makes the server answer 5xx.

Schemathesis generates requests (valid and invalid) from the served spec and sends them in-process
(WSGI) to the real app on the shipped models and a small real SQLite catalogue of its own, so the
admin routes it fuzzes (queue crawls, add and remove schedules) cannot touch other tests' data.
Every response must be a non-5xx with a status code, content type and body the spec declares.
Bounded and derandomised: the same cases run on every machine.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.specs.openapi import checks as oa_checks  # noqa: E402

from conftest import indexed_studio_catalog  # noqa: E402
from server import openapi  # noqa: E402  (pure: the spec without loading any model)

ADMIN_TOKEN = "fuzz-admin-token"
PRODUCTS, SEED = 8, 23
MAX_EXAMPLES = 20

CHECKS = [st_checks.not_a_server_error, oa_checks.status_code_conformance,
          oa_checks.content_type_conformance, oa_checks.response_schema_conformance]

# Operations are known at collection time from the spec source; the test checks the served spec is the same.
schema = schemathesis.openapi.from_dict(openapi.spec())


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """The real app on the shipped models, over its own data dir with a small indexed studio catalogue."""
    from sketchshop.config import settings as sk_settings
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("fuzz") / "var"
    mp.setenv("SKETCHSHOP_DATA_DIR", str(d))
    mp.setenv("SKETCHSHOP_ADMIN_TOKEN", ADMIN_TOKEN)
    mp.setenv("SKETCHSHOP_MAX_UPLOAD_MB", "2")
    for name in ("SKETCHSHOP_DB_URL", "SKETCHSHOP_API_KEYS", "SKETCHSHOP_RATE_LIMIT"):
        mp.delenv(name, raising=False)
    sk_settings.cache_clear()
    try:
        from server import create_app
        cat, searcher, *_ = indexed_studio_catalog(d, PRODUCTS, SEED)
        app = create_app(searcher=searcher, catalog=cat)
        assert app.extensions["sketchshop"].ready, app.extensions["sketchshop"].problems
        yield app
        cat.close()
    finally:
        mp.undo()
        sk_settings.cache_clear()


def test_served_spec_is_valid(data_dir):
    from openapi_spec_validator import validate

    from server import create_app
    served = create_app(load=False).test_client().get("/openapi.json").get_json()  # the spec needs no model
    validate(served)
    assert served == openapi.spec()  # what the fuzzer below is generated from


@pytest.mark.skipif(not shutil.which("java"), reason="openapi-generator needs a Java runtime: no `java` on PATH")
def test_a_kotlin_retrofit_client_generates_from_the_spec(tmp_path):
    """What an Android developer does first: generate the client with openapi-generator's kotlin/jvm-retrofit2. One
    API class per tag, a typed call per operation, every schema a named model (no `*200Response`), numbers as
    Double (BigDecimal in an app is a nuisance) and times as OffsetDateTime."""
    spec = openapi.spec()
    src = tmp_path / "openapi.json"
    src.write_text(json.dumps(spec))
    gen = Path(sys.executable).with_name("openapi-generator-cli")
    r = subprocess.run([str(gen), "generate", "-i", str(src), "-g", "kotlin", "--library", "jvm-retrofit2",
                        "--package-name", "com.sketchshop.api", "-o", str(tmp_path / "kt")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " WARN " not in r.stdout, [line for line in r.stdout.splitlines() if " WARN " in line]
    pkg = tmp_path / "kt" / "src" / "main" / "kotlin" / "com" / "sketchshop" / "api"
    apis = {f.stem: f.read_text() for f in (pkg / "apis").glob("*.kt")}
    models = {f.stem: f.read_text() for f in (pkg / "models").glob("*.kt")}
    assert set(apis) == {t["name"].capitalize() + "Api" for t in spec["tags"]}
    calls = re.findall(r"fun (\w+)\(", "".join(apis.values()))
    assert sorted(calls) == sorted(op["operationId"] for ops in spec["paths"].values() for op in ops.values())
    assert re.search(r'@Multipart\s+@POST\("v1/search"\)\s+fun search\(@Part image: MultipartBody.Part, .*'
                     r'@Part\("top_k"\) topK: kotlin.Int\? = 10, .*\): Call<SearchResponse>', apis["SearchApi"])
    assert set(spec["components"]["schemas"]) <= set(models)
    assert not [m for m in models if re.search(r"\d{3}Response$", m)]  # an inline answer named by its status
    everything = "".join(apis.values()) + "".join(models.values())
    assert "BigDecimal" not in everything and "kotlin.Any" not in models["Match"]
    assert "val score: kotlin.Double" in models["Match"] and "val price: kotlin.Double? = null" in models["Match"]
    assert "val startedAt: java.time.OffsetDateTime? = null" in models["CrawlRun"]
    assert "val lastSeen: java.time.OffsetDateTime? = null" in models["Product"]
    client = (pkg / "infrastructure" / "ApiClient.kt").read_text()
    assert '"apiKey" -> ApiKeyAuth("header", "X-API-Key")' in client  # the key the server may ask for


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation(case, fuzz_app):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if case.operation.definition.raw.get("security") else None
    case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS)
