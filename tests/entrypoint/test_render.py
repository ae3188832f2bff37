"""`dagfleet render` (dagfleet.service.render): a workflow's tasks and pods, offline; the shipped
``#/$defs/dagfleet_*`` schemas; docs/templates.md's worked example (per-table secrets from a spec).

Real Airflow parses the DAG files (``DagBag``) and the provider builds the pods; the CLI runs
against a fresh ``AIRFLOW_HOME`` with no metadata database in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagfleet.fleet.config import PodSpec, SecretSpec
from dagfleet.fleet.errors import DagfleetError, WorkflowConfigError
from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.template_library import TemplateLibrary, shipped_definitions
from dagfleet.service.render import render, to_text
from support.dag import example_workflows, make_dags
from support.docs import doc_files
from support.paths import REPO

DUPLICATE_LINE = (
    "workflow 'acme_tables': task 'load' (item 'orders') field 'secret_specs': environment variable "
    "'TENANT_PASSWORD' is used by more than one secret; fix it in the spec's tables[0].secrets or the "
    "config's pod.secret_sets"
)


def _secrets(pod: dict[str, Any]) -> dict[str, set[str]]:
    """Of one rendered pod: env variable -> secret name, and mount path -> secret name (volumes)."""
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"] if m["name"] in volumes}
    return {"env": set(env.items()), "volume": set(mounts.items())}  # type: ignore[arg-type]


def _cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW"))}
    clean.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", **env)
    return subprocess.run(
        [sys.executable, "-m", "dagfleet.service.cli", *args], env=clean, capture_output=True, text=True, timeout=300
    )


# -- docs/templates.md's worked example -------------------------------------------------------
@pytest.fixture
def per_table(tmp_path: Path) -> dict[str, Path]:
    files = doc_files("templates.md", tmp_path, "per-table/")
    assert set(files) == {
        "per-table/templates/table_pods.py",
        "per-table/templates/table_pods.schema.json",
        "per-table/workflows.yaml",
    }
    return files


def test_the_worked_example_validates_and_renders_one_pod_per_table(per_table: dict[str, Path], tmp_path: Path) -> None:
    """The documented commands, as a user runs them: one pod per table with exactly that table's
    and the tenant's secrets; no metadata database is created."""
    workflows, templates = str(per_table["per-table/workflows.yaml"]), str(tmp_path / "per-table" / "templates")
    home = tmp_path / "airflow-home"
    check = _cli("validate", "--file", workflows, "--templates", templates, home=home)
    assert check.returncode == 0, check.stdout + check.stderr
    result = _cli("render", "acme_tables", "--file", workflows, "--templates", templates, home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    out = yaml.safe_load(result.stdout)  # stdout is the render alone: Airflow's logs went to stderr
    assert [t["task_id"] for t in out["tasks"]] == ["plan_tables", "load"]
    pods = {p["item"]: p["pod"] for p in out["pods"]}
    assert list(pods) == ["orders", "invoices", "customers"]
    tenant = ("TENANT_PASSWORD", "acme-db")
    assert _secrets(pods["orders"]) == {"env": {tenant, ("ORDERS_TOKEN", "acme-orders")}, "volume": set()}
    assert _secrets(pods["invoices"]) == {"env": {tenant}, "volume": {("/etc/invoices", "acme-invoices-tls")}}
    assert _secrets(pods["customers"]) == {"env": {tenant}, "volume": set()}
    assert [p["metadata"]["name"] for p in pods.values()] == ["orders", "invoices", "customers"]
    assert not list(home.rglob("*.db")), "render must not create a metadata database"


def test_the_worked_example_rejects_a_secret_twice_naming_the_spec(per_table: dict[str, Path]) -> None:
    workflows = yaml.safe_load(per_table["per-table/workflows.yaml"].read_text())["workflows"]
    config = workflows["acme_tables"]
    clash = {"deploy_type": "env", "deploy_target": "TENANT_PASSWORD", "secret": "acme-orders", "key": "x"}
    config["spec"]["tables"][0]["secrets"].append(clash)
    library = TemplateLibrary(per_table["per-table/templates/table_pods.py"].parent, "demo")
    with pytest.raises(WorkflowConfigError) as err:
        render("acme_tables", Path("/nonexistent"), staged=([("acme_tables", config)], library))
    assert str(err.value) == DUPLICATE_LINE
    assert f"\n{DUPLICATE_LINE}\n" in (REPO / "docs" / "templates.md").read_text()  # the documented line
    # An invalid table secret is the schema's (shipped definitions): validate names its path.
    config["spec"]["tables"][0]["secrets"][-1] = {**clash, "deploy_target": "X", "secret": "Not_Valid"}
    with pytest.raises(WorkflowConfigError, match=r"config field 'spec.tables\[0\].secrets\[1\].secret'"):
        render("acme_tables", Path("/nonexistent"), staged=([("acme_tables", config)], library))


# -- tenant_etl and the demo template, from the stored record --------------------------------
def test_tenant_etl_from_the_stored_record_items_and_conf(tmp_path: Path) -> None:
    folder = make_dags(tmp_path / "dags", {"globex_etl": example_workflows()["globex_etl"]})
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    out = render("globex_etl", folder)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # read only: nothing written
    assert [(p["task_id"], p["map_index"], p["item"]) for p in out["pods"]] == [
        ("load_table", 0, "accounts"),
        ("load_table", 1, "payments"),
    ]
    for pod in out["pods"]:
        assert _secrets(pod["pod"]) == {"env": {("SOURCE_PASSWORD", "globex-db")}, "volume": set()}
        env = {e["name"]: e.get("value") for e in pod["pod"]["spec"]["containers"][0]["env"]}
        assert (env["DAGFLEET_ITEM"], env["TARGET_SCHEMA"], env["LOAD_MODE"]) == (pod["item"], "globex_raw", "full")
    only = render("globex_etl", folder, item=1)
    assert [p["item"] for p in only["pods"]] == ["payments"]
    assert only["pods"][0]["pod"] == out["pods"][1]["pod"]
    chosen = render("globex_etl", folder, conf={"tables": ["ledger"]})
    assert [p["item"] for p in chosen["pods"]] == ["ledger"]
    with pytest.raises(DagfleetError, match=r"--item 2: task 'load_table' maps over 2 item\(s\) \(0 to 1\)"):
        render("globex_etl", folder, item=2)
    with pytest.raises(DagfleetError, match=r"workflow 'nope': no generated DAG with a stored record"):
        render("nope", folder)


def test_the_output_is_deterministic_secret_volumes_numbered(tmp_path: Path) -> None:
    """acme_sync (demo template): a static pod and one per item, with secret volumes."""
    folder = make_dags(tmp_path / "dags", {"acme_sync": example_workflows()["acme_sync"]})
    first, second = render("acme_sync", folder), render("acme_sync", folder)
    assert to_text(first) == to_text(second)
    assert to_text(first, "json") == to_text(second, "json")
    assert json.loads(to_text(first, "json")) == first
    static = next(p["pod"] for p in first["pods"] if p["task_id"] == "pod_static")
    assert [v["name"] for v in static["spec"]["volumes"]] == ["secretvol-1"]
    assert _secrets(static) == {"env": {("ACME_API_TOKEN", "acme-api")}, "volume": {("/etc/acme", "acme-tls")}}
    per_item = {p["item"]: p["pod"] for p in first["pods"] if p["task_id"] == "pod_per_item"}
    assert list(per_item) == ["tenant-a", "tenant-b", "shared-1"]
    assert _secrets(per_item["tenant-a"])["volume"] == {("/var/run/tenant", "tenant-a-certs")}
    assert _secrets(per_item["shared-1"]) == {"env": {("TENANT_PASSWORD", "shared-db")}, "volume": set()}


# -- the shipped definitions ------------------------------------------------------------------
ENV = {"deploy_type": "env", "deploy_target": "DB_PASSWORD", "secret": "tenant-a-db", "key": "password"}
VOLUME = {"deploy_type": "volume", "deploy_target": "/var/run/certs", "secret": "certs"}
SECRET_SAMPLES: list[Any] = [
    ENV,
    VOLUME,
    {**VOLUME, "key": "ca.crt"},
    {**VOLUME, "key": None},
    {**ENV, "key": None},
    {k: v for k, v in ENV.items() if k != "key"},
    {**ENV, "deploy_target": "db_password"},
    {**ENV, "deploy_target": "1ABC"},
    {**VOLUME, "deploy_target": "relative/path"},
    {**VOLUME, "deploy_target": "/"},
    {**VOLUME, "deploy_target": "/a/../b"},
    {**VOLUME, "deploy_target": "/a/..b"},
    {**VOLUME, "deploy_target": "/a:b"},
    {**ENV, "secret": "Not_Valid"},
    {**ENV, "secret": "a" * 254},
    {**ENV, "secret": "a.b-c"},
    {**ENV, "key": ".."},
    {**ENV, "key": "."},
    {**ENV, "key": "a/b"},
    {**ENV, "key": "k" * 254},
    {**ENV, "deploy_type": "file"},
    {**ENV, "extra": 1},
    {**ENV, "secret": 5},
    "not an object",
]
POD_SAMPLES: list[Any] = [
    {"image": "busybox:1.36"},
    {"image": ""},
    {"image": "bad image"},
    {"image": "x", "namespace": "Bad_NS"},
    {"image": "x", "namespace": "jobs", "service_account_name": "runner.a"},
    {"image": "x", "service_account_name": "Runner"},
    {"image": "x", "env": {"PORT": 8080, "MODE": "a"}},
    {"image": "x", "env": {"bad-name": "a"}},
    {"image": "x", "env": {"FLAG": True}},
    {"image": "x", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}}},
    {"image": "x", "resources": {"requests": {"cpu": "lots"}}},
    {"image": "x", "resources": {"requests": {"CPU": "1"}}},
    {"image": "x", "secrets": [ENV, VOLUME], "per_item": True},
    {"image": "x", "secrets": [{**ENV, "secret": "Bad"}]},
    {"image": "x", "secret_sets": {"tenant_a": [ENV]}, "default_secret_set": "tenant_a"},
    {"image": "x", "secret_sets": {"bad-name": [ENV]}},
    {"image": "x", "per_item": "yes"},
    {"image": "x", "startup_timeout_seconds": 0},
    {"image": "x", "startup_timeout_seconds": 3600},
    {"image": "x", "cmds": ["sh", 1]},
    {"image": "x", "unknown": 1},
    {"cmds": ["sh"]},
]


def _valid_by_model(model: Any, sample: Any) -> bool:
    try:
        model.model_validate(sample)
    except Exception:  # noqa: BLE001 - pydantic's ValidationError, or a TypeError on a non-dict
        return False
    return True


@pytest.mark.parametrize(
    ("definition", "model", "samples"),
    [("dagfleet_secret_spec", SecretSpec, SECRET_SAMPLES), ("dagfleet_pod_args", PodSpec, POD_SAMPLES)],
)
def test_the_shipped_definitions_agree_with_the_config_model(definition: str, model: Any, samples: list[Any]) -> None:
    import jsonschema

    schema = {"$ref": f"#/$defs/{definition}", "$defs": shipped_definitions()}
    validator = jsonschema.Draft202012Validator(schema)
    verdicts = [(sample, validator.is_valid(sample), _valid_by_model(model, sample)) for sample in samples]
    assert [v for v in verdicts if v[1] != v[2]] == []
    assert {v[2] for v in verdicts} == {True, False}  # the table holds both kinds


def test_a_template_schema_gets_the_definitions_locally(tmp_path: Path) -> None:
    """Only the schema's own document: a $ref to #/$defs/dagfleet_* resolves without retrieval."""
    (tmp_path / "t.py").write_text("# a template\n")
    own = {"type": "string"}
    schema = {
        "type": "object",
        "properties": {"secrets": {"$ref": "#/$defs/dagfleet_secret_specs"}, "x": {"$ref": "#/$defs/mine"}},
        "$defs": {"mine": own},
    }
    (tmp_path / "t.schema.json").write_text(json.dumps(schema))
    template = TemplateLibrary(tmp_path, "t").get("t")
    assert template.schema is not None and template.schema["$defs"]["mine"] == own
    bad = {"secrets": [ENV, {**ENV, "secret": "Bad"}], "x": 1}
    assert [path for path, _ in template.spec_problems(bad)] == ["spec.secrets[1].secret", "spec.x"]
    assert template.spec_problems({"secrets": [ENV]}) == []
    untouched = {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "integer"}}}
    (tmp_path / "u.py").write_text("# another\n")
    (tmp_path / "u.schema.json").write_text(json.dumps(untouched))
    assert TemplateLibrary(tmp_path, "u").get("u").schema == untouched  # no reference to ours: as written


def test_the_shipped_tenant_etl_renders_without_pods_too(tmp_path: Path) -> None:
    """A workflow without pods: the tasks, and no pods."""
    assert (SHIPPED_TEMPLATES / "tenant_etl.py").is_file()
    folder = make_dags(tmp_path / "dags", {"acme_etl": example_workflows()["acme_etl"]})
    out = render("acme_etl", folder)
    assert out["pods"] == []
    assert [t["task_id"] for t in out["tasks"]] == ["plan_tables", "load_table", "report"]
    assert [t["mapped"] for t in out["tasks"]] == [False, True, False]


def test_the_command_fails_on_one_line(tmp_path: Path) -> None:
    """Exit 1 and one line on stderr (never a traceback); nothing on stdout."""
    home, dags = tmp_path / "airflow-home", tmp_path / "dags"
    missing = _cli("render", "nope", home=home, DAGFLEET_DAGS_FOLDER=str(dags))
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "workflow 'nope': no generated DAG with a stored record in" in missing.stderr
    bad_conf = _cli("render", "nope", "--conf", "[1]", home=home, DAGFLEET_DAGS_FOLDER=str(dags))
    assert (bad_conf.returncode, bad_conf.stdout) == (1, "")
    assert "--conf must be a JSON object" in bad_conf.stderr


def _secret_specs() -> Any:
    """A valid spec with one field changed (or dropped, or one added): each field from its known
    edge cases or generated from a small alphabet that both hits and misses its pattern."""
    from hypothesis import strategies as st

    def edge_or_text(edges: list[Any], alphabet: str) -> Any:
        return st.one_of(st.sampled_from(edges), st.text(alphabet, max_size=12))

    segment = st.sampled_from(["", "a", "..", "..b", ".", "a:b", "etc", "A"])
    path = st.lists(segment, max_size=4).map("/".join)
    targets = ["DB_PASSWORD", "db_password", "Db", "1ABC", "_X", "A-B", "/etc/x", "/a/../b", "/..", "/", "/a:b"]
    fields = {
        "deploy_type": st.sampled_from(["env", "volume", "file", None]),
        "deploy_target": st.one_of(edge_or_text(targets, "AZ_09az-"), path, path.map(lambda p: "/" + p)),
        "secret": edge_or_text(["db", "a.b-c", "Not_Valid", "-a", "a-", "a..b", "a" * 254, "a" * 253], "az09-.Z_"),
        "key": st.one_of(st.none(), edge_or_text(["ca.crt", ".", "..", "..a", "a/b", "k" * 254], "az.-_/Z09")),
        "extra": st.integers(),
    }
    bases = st.sampled_from([ENV, VOLUME, {**VOLUME, "key": "ca.crt"}])

    def change(base: dict[str, Any], name: str, drop: bool) -> Any:
        if drop:
            return st.just({k: v for k, v in base.items() if k != name})
        return fields[name].map(lambda value: {**base, name: value})

    return st.tuples(bases, st.sampled_from(sorted(fields)), st.booleans()).flatmap(lambda t: change(*t))


def test_the_secret_spec_definition_agrees_with_the_model_on_generated_specs() -> None:
    """An oracle the schema did not write: pydantic's SecretSpec (what config and PodOperator use)."""
    import jsonschema
    from hypothesis import HealthCheck, given, settings

    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/$defs/dagfleet_secret_spec", "$defs": shipped_definitions()}
    )
    seen: set[bool] = set()

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_secret_specs())
    def agree(spec: dict[str, Any]) -> None:
        verdict = _valid_by_model(SecretSpec, spec)
        seen.add(verdict)
        assert validator.is_valid(spec) == verdict, spec

    agree()
    assert seen == {True, False}


MAPPED_PLANNER = """
import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
from airflow.sdk import DAG, task

from dagfleet import PodOperator, pod_kwargs, workflow

wf = workflow(__file__)


@task
def names():
    return ["a", "b"]


@task
def plan(name):
    return {"item": name, "secret_specs": []}


with DAG(**wf.dag_args()) as dag:
    planned = plan.expand(name=names())
    PodOperator.partial(task_id="pods", image="busybox", namespace="ns").expand_kwargs(planned.map(pod_kwargs))
"""


def test_items_from_a_mapped_task_are_refused_on_one_line(tmp_path: Path) -> None:
    template = tmp_path / "mapped_planner.py"
    template.write_text(MAPPED_PLANNER)
    folder = make_dags(tmp_path / "dags", {"w": {}}, template=template)
    with pytest.raises(DagfleetError) as err:
        render("w", folder)
    assert str(err.value) == (
        "workflow 'w': task 'plan' feeds a mapped pod task but is not a plain TaskFlow task, "
        "so render cannot run it offline"
    )
