"""Bounded JSON: what dagfleet accepts from the config API (docs/openapi.yaml, "Limits").

Python's ``json`` parses a 5,000-deep document into a ``RecursionError`` and a 5,000-digit
number into a ``ValueError``; neither is a ``JSONDecodeError``, and a deep value that does parse
breaks later steps that recurse (validation, writing it back as JSON). So every answer is parsed
here, under three bounds:

- ``MAX_DEPTH`` levels of nesting (arrays and objects) in one answer, the list's own levels included;
- integers of at most ``MAX_INT_DIGITS`` digits;
- the body size is bounded by the client (``dagfleet.api.client.MAX_BODY_BYTES``).

A value beyond a bound raises ``JsonLimitError`` (one line saying which bound). For the workflow
list, ``split_array`` lets the client find the one entry that breaks a bound, so only that
workflow is affected.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 100

# A JSON string (escapes included) or one structural character: the parts a scan looks at.
_PART = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
_ID_VALUE = re.compile(r'\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*")')


class JsonLimitError(ValueError):
    """A JSON value beyond one of the bounds; ``str()`` says which, in a few words."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JsonLimitError(f"holds a {digits:,}-digit number (at most {MAX_INT_DIGITS} digits)")
    return int(text)


def text_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text, found by a scan (strings skipped whole).

    No parsing and no recursion: the bound holds whatever the interpreter's recursion limit is."""
    depth = deepest = 0
    for match in _PART.finditer(text):
        part = match.group()
        if part in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif part in ("]", "}"):
            depth -= 1
    return deepest


def loads(data: bytes | str, depth_limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` within the bounds; ``JSONDecodeError``/``UnicodeDecodeError`` as usual.

    The depth is checked on the text before ``json`` sees it, so ``json`` never recurses deeper
    than ``depth_limit`` levels (no ``RecursionError``, whatever the recursion limit)."""
    text = data.decode(json.detect_encoding(data), "surrogatepass") if isinstance(data, bytes) else data
    if text_depth(text) > depth_limit:
        raise JsonLimitError(f"is nested deeper than the {MAX_DEPTH} levels an answer may have")
    return json.loads(text, parse_int=_parse_int)


def split_array(text: str) -> list[str] | None:
    """The source text of each element of a top-level JSON array, or None when ``text`` is not one.

    Only the structure is scanned (strings skipped whole), nothing is parsed, so an element
    that breaks a bound can be parsed, and reported, on its own.
    """
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        return None
    elements: list[str] = []
    depth = 0
    element_start = start + 1
    end = None
    for match in _PART.finditer(text, start):
        part = match.group()
        if part[0] == '"' or part == ":":
            continue
        if part in "[{":
            depth += 1
        elif part in "]}":
            depth -= 1
            if depth == 0:
                end = match.end()
                elements.append(text[element_start : match.start()])
                break
        elif depth == 1:  # a comma between two elements of the top-level array
            elements.append(text[element_start : match.start()])
            element_start = match.end()
    if end is None or text[end:].strip():
        return None
    if len(elements) == 1 and not elements[0].strip():
        return []
    return elements


def find_id(element: str) -> str | None:
    """The ``"id"`` string of a ``{"id": ..., ...}`` element's own level, without parsing the rest."""
    depth = 0
    for match in _PART.finditer(element):
        part = match.group()
        if part in "[{":
            depth += 1
        elif part in "]}":
            depth -= 1
        elif depth == 1 and part == '"id"':
            value = _ID_VALUE.match(element, match.end())
            if value is None:
                return None
            try:
                found = json.loads(value.group(1))
            except ValueError:
                return None
            return found if isinstance(found, str) else None
    return None
