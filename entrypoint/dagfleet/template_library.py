"""Templates: the base DAGs a fleet's workflows are copies of (docs/templates.md).

A templates folder (``DAGFLEET_TEMPLATES``, default: the templates shipped in the package)
holds ``<name>.py`` (a base DAG) and, optionally, ``<name>.schema.json``: the JSON Schema
(draft 2020-12 unless the schema's ``$schema`` says otherwise) of that template's ``spec``.
Specs are validated here with ``jsonschema``, without importing Airflow or the template.
``DAGFLEET_BASE_DAG`` adds one file as a template named after its stem (the one-template shortcut).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagfleet.errors import DagfleetError, clip

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
SCHEMA_SUFFIX = ".schema.json"

Problem = tuple[str, str]  # (JSON path, message)


class TemplateError(DagfleetError):
    """A template that cannot be used: unknown, unreadable, or with a broken schema."""


def json_path(parts: Iterable[Any], prefix: str = "spec") -> str:
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    source: bytes
    schema: dict[str, Any] | None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source).hexdigest()[:24]

    def spec_problems(self, spec: Any) -> list[Problem]:
        """Every way ``spec`` breaks this template's schema, as (JSON path, message), path order."""
        if self.schema is None:
            return [] if isinstance(spec, dict) else [("spec", "expected a JSON object")]
        from dagfleet.schemas import problems, validator

        return problems(validator(self.schema), spec, "spec")


def _load_schema(path: Path, name: str) -> dict[str, Any] | None:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        raise TemplateError(f"template {name!r}: cannot read its schema {path.name}: {clip(err)}") from None
    if not isinstance(schema, dict):
        raise TemplateError(f"template {name!r}: its schema {path.name} is not a JSON object")
    from dagfleet.schemas import schema_problems  # jsonschema + RE2 (~0.5 s): only with a schema

    problems = schema_problems(schema)
    if problems:
        shown = "; ".join(f"{clip(where)!a}: {message}" for where, message in problems[:8])
        raise TemplateError(f"template {name!r}: its schema {path.name} is refused: {shown} (see docs/config.md)")
    return schema


class TemplateLibrary:
    """The templates of one folder (plus the ``DAGFLEET_BASE_DAG`` shortcut), read once and kept."""

    def __init__(self, folder: Path, default: str, base_dag: Path | None = None) -> None:
        self.folder = Path(folder)
        self.base_dag = Path(base_dag) if base_dag else None
        self.default = default
        self._loaded: dict[str, Template | TemplateError] = {}

    def names(self) -> list[str]:
        found = {p.name.removesuffix(".py") for p in self.folder.glob("*.py") if NAME.fullmatch(p.stem)}
        if self.base_dag is not None:
            found.add(self.base_dag.stem)
        return sorted(found)

    def resolve(self, name: str | None) -> str:
        return name or self.default

    def get(self, name: str | None) -> Template:
        """The template ``name`` (``None``: the default), or ``TemplateError`` saying why not."""
        name = self.resolve(name)
        if name not in self._loaded:
            try:
                self._loaded[name] = self._load(name)
            except TemplateError as err:
                self._loaded[name] = err
        found = self._loaded[name]
        if isinstance(found, TemplateError):
            raise found
        return found

    def _load(self, name: str) -> Template:
        if self.base_dag is not None and name == self.base_dag.stem:
            path = self.base_dag
        elif NAME.fullmatch(name):
            path = self.folder / f"{name}.py"
        else:
            raise TemplateError(f"{name!r} is not a template name (letters, digits and '_', starting with a letter)")
        try:
            source = path.read_bytes()
        except FileNotFoundError:
            known = ", ".join(self.names()) or f"none in {self.folder}"
            raise TemplateError(f"unknown template {name!r} (known: {known})") from None
        except OSError as err:
            raise TemplateError(f"cannot read template {name!r} at {path}: {err.strerror}") from None
        schema = _load_schema(path.with_name(path.stem + SCHEMA_SUFFIX), name)
        return Template(name, path, source, schema)
