"""The OpenAPI spec is valid, and fuzzing every operation of it never makes the server answer 5xx.

Schemathesis generates requests (valid and invalid) from the served spec and sends them in-process
(WSGI) to the real app on the shipped models and a small real SQLite catalogue of its own, so the
admin routes it fuzzes (queue crawls, add and remove schedules) cannot touch other tests' data.
Every response must be a non-5xx with a status code, content type and body the spec declares.
Bounded and derandomised: the same cases run on every machine.
"""
from __future__ import annotations

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


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation(case, fuzz_app):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if case.operation.definition.raw.get("security") else None
    case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS)
