"""Exceptions whose message is one line a user can act on (and never holds a secret)."""

from __future__ import annotations

from collections.abc import Iterable


class DagfleetError(Exception):
    """Base class: ``str(err)`` is the line shown to the user."""


class ConfigApiError(DagfleetError):
    """The config API could not be used (down, slow, wrong key, bad answer)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class WorkflowIdError(DagfleetError):
    """A workflow ID that cannot become a DAG."""


class WorkflowConfigError(DagfleetError):
    """A workflow config that does not validate."""


MAX_SHOWN = 200  # characters of any one value quoted in a line (docs/config.md, "Errors")


def clip(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as it may be quoted in a log line, a status entry or a Fleet page row: its text
    (``repr`` for a non-string) cut to ``limit`` characters plus ``... (N bytes)`` (ASCII: a line
    that must stay ASCII, e.g. an escaped workflow ID, stays ASCII)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    size = len(text.encode("utf-8", "surrogatepass"))
    return f"{text[:limit]}... ({size:,} bytes)"


def json_path(parts: Iterable[object], prefix: str = "") -> str:
    """``prefix.a[0].b``: a JSON path from its parts (ints are indexes); "" for no parts and no prefix."""
    path = prefix
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path


def one_line(err: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, at most ``limit`` characters, ASCII only (no log forging)."""
    text = " ".join(ascii(str(err))[1:-1].split())
    text = clip(text, limit)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
