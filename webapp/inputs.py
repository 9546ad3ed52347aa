"""Reading requests strictly: JSON, typed fields and catalog ids.

Every JSON body is parsed by ``StrictJSONProvider`` (installed by ``create_app``): it
refuses the non-standard constants ``NaN``, ``Infinity`` and ``-Infinity`` and nesting
too deep for the parser, so either gives the route a body that is not a JSON object
(400) rather than a ``RecursionError`` (500) or a number no computation can use.
Fields are taken by their JSON type: ``"false"`` is not a boolean, ``true`` is not an
id, ``1.5`` is not a whole number; an error names the value as JSON spells it
(``true``, ``null``, ``"text"``), never as Python would. Ids in URLs go through
``CatalogIdConverter``: the catalog's ids are SQLite integers, so a larger number is 404.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import MAX_ID


class CatalogIdConverter(IntegerConverter):
    """``<int:...>`` in routes: a whole number from 0 to MAX_ID; a larger one is 404.

    Raised rather than a non-match: werkzeug would then try the path's other rules and
    answer 405 for a method another rule takes.
    """

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise NotFound(f"no such id: {value[:40]} (ids go up to {MAX_ID})")
        return number


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing standard JSON only (see module docstring)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _no_constant)
        try:
            return json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


JSON_KINDS = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}
SHOWN_CHARS = 40  # of a received string in an error message


def spelled(value: Any) -> str:
    """A received value as JSON spells it, for an error message: ``true``, ``false``,
    ``null``, ``1.5``, ``"text"`` (cut to SHOWN_CHARS), or the kind of a list or object."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        cut = value[:SHOWN_CHARS]
        return json.dumps(cut, ensure_ascii=False) + ("…" if len(value) > len(cut) else "")
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return "an object" if isinstance(value, dict) else JSON_KINDS.get(type(value), "a list")


def json_body(empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object ({} for no body when ``empty_ok``).

    Raises:
        BadQuery: no JSON body (or not sent as JSON), a body that is not valid JSON
            (malformed, NaN or Infinity, nested too deeply, not UTF-8), or JSON that
            is not an object; each says which.
    """
    data = request.get_data()
    if not data and empty_ok:
        return {}
    if not request.is_json or not data:
        raise BadQuery("send a JSON object with Content-Type: application/json")
    try:
        body = current_app.json.loads(data)
    except UnicodeDecodeError:
        raise BadQuery("the request body is not valid JSON: it is not UTF-8 text") from None
    except ValueError as e:
        raise BadQuery(f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        kind = JSON_KINDS.get(type(body), "a number")
        raise BadQuery(f"send a JSON object ({{...}}), not {kind}")
    return body


def whole_number(value: Any, name: str, low: int, high: int, default: int) -> int:
    """A whole number from a JSON field (an integer) or a query/form field (digits)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadQuery(f"{name} must be a whole number, not {spelled(value)}")
    try:
        number = int(value)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, not {spelled(value)}") from None
    if not low <= number <= high:
        raise BadQuery(f"{name} must be between {low} and {high}, not {number}")
    return number


def boolean(value: Any, name: str, default: bool = False) -> bool:
    """A JSON boolean field (absent or null: ``default``)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadQuery(f"{name} must be true or false, not {spelled(value)}")
    return value


FORM_TRUE = ("1", "true", "on", "yes")
FORM_FALSE = ("", "0", "false", "off", "no")


def form_boolean(value: str | None, name: str) -> bool:
    """A form or query-string flag: 1/true/on/yes, or 0/false/off/no/empty (absent: no)."""
    text = (value or "").strip().lower()
    if text in FORM_TRUE:
        return True
    if text in FORM_FALSE:
        return False
    raise BadQuery(f"{name} must be 1 or 0 (or true/false, on/off, yes/no), not {text[:40]!r}")


def id_list(value: Any, name: str = "ids") -> list[int]:
    """A non-empty JSON list of catalog ids (integers from 0 to MAX_ID)."""
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_ID for i in value
        )
    ):
        raise BadQuery(f"{name} must be a non-empty list of image ids (whole numbers)")
    return value
