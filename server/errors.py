"""Every error a client can cause becomes JSON `{"error": {"code", "message"}}` with a 4xx."""
from __future__ import annotations

import logging
import re

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from sketchshop.errors import UserError

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # ids are 64-bit database integers; a larger id in a URL names nothing
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_int(raw: str) -> int:
    """An integer written in ASCII digits; ValueError otherwise (Python's int() also takes '１２', ' 5' and '1_0')."""
    if not _INTEGER.fullmatch(raw):
        raise ValueError(f"not an integer: {raw!r}")
    return int(raw)


def parse_number(raw: str) -> float:
    """A decimal number in ASCII digits (float() also takes '１２', ' 5', '1_0', 'nan' and 'inf')."""
    if not _NUMBER.fullmatch(raw):
        raise ValueError(f"not a number: {raw!r}")
    return float(raw)


class AsciiIntConverter(IntegerConverter):
    """`<int:...>` in routes: ASCII digits only (Werkzeug's `\\d+` also matches '１２', which int() reads as 12)."""
    regex = r"[0-9]+"


class ApiError(UserError):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def error_response(status: int, code: str, message: str):
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    return resp


try:  # gunicorn's input stream raises these (InvalidChunkSize, ChunkMissingTerminator) for a broken chunked body
    from gunicorn.http.errors import ParseException
except ImportError:  # the development server
    ParseException = OSError
BODY_ERRORS = (OSError, ValueError, ParseException)


def register(app: Flask) -> None:
    @app.before_request
    def _read_body():
        """Read the body before any view does: a broken chunked encoding or a body cut short is the client's
        fault, and surfaces as the server's input stream raising (BODY_ERRORS)."""
        try:
            if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
                request.form  # noqa: B018 (parses the files too)
            elif request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
                request.get_data(cache=True)
        except BODY_ERRORS as e:
            raise ApiError(400, "bad_request", f"the request body could not be read: {type(e).__name__}") from None

    @app.errorhandler(UserError)
    def _user(e: UserError):
        return error_response(e.status, e.code, str(e))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        code = {413: "too_large", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited",
                415: "unsupported_media_type"}.get(e.code, (e.name or "error").lower().replace(" ", "_"))
        message = e.description or e.name
        if e.code == 413:  # Werkzeug says which limit in its own words; ours name all three
            c = app.config
            message = (f"request too large: at most {c['MAX_CONTENT_LENGTH'] / 1e6:g} MB in all, "
                       f"{c['MAX_FORM_MEMORY_SIZE'] / 1e6:g} MB in a non-file field and {c['MAX_FORM_PARTS']} parts")
        return error_response(e.code or 500, code, message)

    @app.errorhandler(Exception)
    def _crash(e: Exception):  # a bug of ours, never a client's fault: log it, say little
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error (logged)")
