"""Templates: the base DAGs a fleet's workflows are copies of (docs/templates.md).

A templates folder (``DAGFLEET_TEMPLATES``) holds ``<name>.py`` (a base DAG) and, optionally,
``<name>.schema.json``: the JSON Schema (draft 2020-12 unless the schema's ``$schema`` says
otherwise) of that template's ``spec``.
Specs are validated here with ``jsonschema``, without importing Airflow or the template.
``DAGFLEET_BASE_DAG`` adds one file as a template named after its stem (the one-template shortcut).
The user's folder adds to the shipped templates (``packaged``): a name found in both is the user's.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagfleet.fleet.errors import DagfleetError, clip
from dagfleet.fleet.workflow_ids import TEMPLATE_NAME

SCHEMA_SUFFIX = ".schema.json"

Problem = tuple[str, str]  # (JSON path, message)


class TemplateError(DagfleetError):
    """A template that cannot be used: unknown, unreadable, or with a broken schema."""


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    source: bytes
    schema: dict[str, Any] | None

    def spec_problems(self, spec: Any) -> list[Problem]:
        """Every way ``spec`` breaks this template's schema, as (JSON path, message), path order."""
        if self.schema is None:
            return [] if isinstance(spec, dict) else [("spec", "expected a JSON object")]
        from dagfleet.fleet.schemas import problems, validator

        return problems(validator(self.schema), spec, "spec")


SHIPPED_REF = "#/$defs/dagfleet_"  # a template schema's $ref to dagfleet's definitions starts so
SHIPPED_DEFINITIONS = Path(__file__).with_name("shipped_schemas") / "definitions.json"


@functools.cache
def shipped_definitions() -> dict[str, Any]:
    """dagfleet's JSON Schema definitions (``dagfleet_secret_spec``, ``dagfleet_secret_specs``,
    ``dagfleet_pod_args``, ``dagfleet_quantities``), shipped in the package."""
    return json.loads(SHIPPED_DEFINITIONS.read_text(encoding="utf-8"))["$defs"]


def with_shipped_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema that refers to ``#/$defs/dagfleet_…`` gets dagfleet's definitions in its own
    ``$defs`` (a definition of the same name it has itself wins): its refs stay inside the one
    document, nothing is retrieved."""
    if SHIPPED_REF not in json.dumps(schema):
        return schema
    own = schema.get("$defs") if isinstance(schema.get("$defs"), dict) else {}
    return {**schema, "$defs": {**shipped_definitions(), **own}}


def _load_schema(path: Path, name: str) -> dict[str, Any] | None:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        raise TemplateError(f"template {name!r}: cannot read its schema {path.name}: {clip(err)}") from None
    if not isinstance(schema, dict):
        raise TemplateError(f"template {name!r}: its schema {path.name} is not a JSON object")
    schema = with_shipped_definitions(schema)
    from dagfleet.fleet.schemas import schema_problems  # jsonschema + RE2 (~0.5 s): only with a schema

    problems = schema_problems(schema)
    if problems:
        shown = "; ".join(f"{clip(where)!a}: {message}" for where, message in problems[:8])
        raise TemplateError(f"template {name!r}: its schema {path.name} is refused: {shown} (see docs/config.md)")
    return schema


class TemplateLibrary:
    """The templates of a folder, then of ``packaged`` (the shipped ones; the folder's name wins on a
    clash), plus the ``DAGFLEET_BASE_DAG`` shortcut; read once and kept."""

    def __init__(self, folder: Path, default: str, base_dag: Path | None = None, packaged: Path | None = None) -> None:
        self.folder = Path(folder)
        self.folders = [self.folder] + ([Path(packaged)] if packaged and Path(packaged) != self.folder else [])
        self.base_dag = Path(base_dag) if base_dag else None
        self.default = default
        self._loaded: dict[str, Template | TemplateError] = {}

    def _file(self, name: str) -> Path:
        """``<name>.py`` in the first folder that has it (the first folder's when none does)."""
        candidates = [folder / f"{name}.py" for folder in self.folders]
        return next((path for path in candidates if path.is_file()), candidates[0])

    def names(self) -> list[str]:
        found = {
            p.name.removesuffix(".py") for f in self.folders for p in f.glob("*.py") if TEMPLATE_NAME.fullmatch(p.stem)
        }
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
        elif TEMPLATE_NAME.fullmatch(name):
            path = self._file(name)
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
