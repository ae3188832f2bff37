"""`templates.*` values: every syncing container finds the workflows' templates (docs/templates.md)."""

from __future__ import annotations

import pytest

from support.chart import container, env_of, pod_spec, render_chart

pytestmark = pytest.mark.helm

# The components that sync DAGs (the api-server and triggerer do not).
SYNCING = [("dag-processor", "dag-processor"), ("scheduler", "scheduler")]


def _deployment(component: str, values: dict | None = None) -> dict:
    (doc,) = render_chart(values, show_only=[f"templates/{component}/deployment.yaml"])
    return doc


@pytest.mark.parametrize(("component", "name"), SYNCING)
def test_no_templates_values_use_the_shipped_templates(component: str, name: str) -> None:
    env = env_of(container(_deployment(component), name))
    assert "DAGFLEET_TEMPLATES" not in env
    assert "DAGFLEET_DEFAULT_TEMPLATE" not in env


@pytest.mark.parametrize(("component", "name"), SYNCING)
def test_a_folder_in_the_image(component: str, name: str) -> None:
    values = {"templates": {"path": "/opt/dagfleet/templates", "default": "copy_tables"}}
    doc = _deployment(component, values)
    env = env_of(container(doc, name))
    assert env["DAGFLEET_TEMPLATES"] == "/opt/dagfleet/templates"
    assert env["DAGFLEET_DEFAULT_TEMPLATE"] == "copy_tables"
    assert "templates" not in [v["name"] for v in pod_spec(doc)["volumes"]]


@pytest.mark.parametrize(("component", "name"), SYNCING)
def test_a_configmap_is_mounted_read_only_and_used(component: str, name: str) -> None:
    doc = _deployment(component, {"templates": {"configMap": "my-templates", "path": "/ignored"}})
    main = container(doc, name)
    assert env_of(main)["DAGFLEET_TEMPLATES"] == "/opt/dagfleet/templates-configmap"
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == "templates"]
    assert mount == {"name": "templates", "mountPath": "/opt/dagfleet/templates-configmap", "readOnly": True}
    (volume,) = [v for v in pod_spec(doc)["volumes"] if v["name"] == "templates"]
    assert volume["configMap"]["name"] == "my-templates"


def test_a_bad_template_name_fails_the_schema() -> None:
    from support.chart import HelmFailedError

    with pytest.raises(HelmFailedError) as raised:
        render_chart({"templates": {"default": "not-a-name"}})
    assert "templates" in str(raised.value)
