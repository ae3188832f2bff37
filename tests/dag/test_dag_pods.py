"""The pods KubernetesPodOperator would create, rendered without a cluster (dry run).

`pod_static` gets its secrets from the config at parse time; `pod_per_item` gets each item's
secrets at run time, from JSON specs chosen by `plan_items` and turned into `Secret` objects by
`DagfleetPodOperator` (Secret objects cannot travel through XCom).
"""

from __future__ import annotations

from typing import Any

import pytest

from dagfleet.authoring.workflow import choose_items, plan
from dagfleet.fleet.config import validate_config
from dagfleet.fleet.errors import WorkflowConfigError
from dagfleet.service.render import render_context

pytestmark = pytest.mark.airflow

WORKFLOW = "acme_sync"


def _render(dag: Any, task: Any, conf: dict[str, Any] | None = None, map_index: int = -1) -> Any:
    context = render_context(dag, task, conf, map_index)
    task.render_template_fields(context)
    return task.build_pod_request_obj(context, dry_run=True)


def _secret_env(pod: Any) -> dict[str, tuple[str, str]]:
    return {
        env.name: (env.value_from.secret_key_ref.name, env.value_from.secret_key_ref.key)
        for env in pod.spec.containers[0].env or []
        if env.value_from is not None and env.value_from.secret_key_ref is not None
    }


def _plain_env(pod: Any) -> dict[str, str]:
    return {env.name: env.value for env in pod.spec.containers[0].env or [] if env.value_from is None}


def _secret_mounts(pod: Any) -> dict[str, str]:
    """mount path -> secret name (volume names are random: join them, never compare them)."""
    volumes = {v.name: v.secret.secret_name for v in pod.spec.volumes or [] if v.secret is not None}
    return {m.mount_path: volumes[m.name] for m in pod.spec.containers[0].volume_mounts or [] if m.name in volumes}


def _per_item_pods(dag: Any, planned: list[dict[str, Any]]) -> list[Any]:
    """Unmap pod_per_item as the worker does: the DAG's own .map() callables on plan_items' output."""
    mapped = dag.get_task("pod_per_item")
    callables = getattr(mapped, mapped._expand_input_attr).value.callables
    pods = []
    for index, item in enumerate(planned):
        kwargs = item
        for function in callables:
            kwargs = function(kwargs)
        pods.append(_render(dag, mapped.unmap(kwargs), map_index=index))
    return pods


def test_static_pod_gets_the_configs_secrets_at_parse_time(examples: Any) -> None:
    dag = examples.bag.dags[WORKFLOW]
    pod = _render(dag, dag.get_task("pod_static"), {"message": "from conf"})
    container = pod.spec.containers[0]
    assert pod.metadata.namespace == "dagfleet-jobs"
    assert container.image == "busybox:1.36"
    assert container.command == ["sh", "-c"]
    assert container.args == ["echo syncing $(DAGFLEET_ITEM) for from conf; ls /etc/acme || true"]
    assert container.resources.requests == {"cpu": "100m", "memory": "64Mi"}
    assert container.resources.limits == {"cpu": "500m", "memory": "128Mi"}
    assert _secret_env(pod) == {"ACME_API_TOKEN": ("acme-api", "token")}
    assert _secret_mounts(pod) == {"/etc/acme": "acme-tls"}
    assert _plain_env(pod) == {"LOG_LEVEL": "info"}
    assert all(m.read_only for m in container.volume_mounts)


def test_volume_secret_with_a_key_mounts_only_that_key(examples: Any) -> None:
    dag = examples.bag.dags["partner_export"]
    pod = _render(dag, dag.get_task("pod_static"))
    assert pod.metadata.namespace == "default"
    (volume,) = [v for v in pod.spec.volumes if v.secret is not None]
    assert volume.secret.secret_name == "partner-sftp-key"  # noqa: S105 - a Secret name, no value
    assert [(i.key, i.path) for i in volume.secret.items] == [("id_ed25519", "id_ed25519")]
    assert _secret_env(pod) == {"SFTP_USER": ("partner-sftp", "user")}


def test_each_mapped_pod_gets_its_own_secrets_at_run_time(examples: Any) -> None:
    dag = examples.bag.dags[WORKFLOW]
    config = validate_config(WORKFLOW, examples.configs[WORKFLOW])
    # The run's conf chooses the items; a conf item may pick any secret set the config declares.
    conf = {"items": ["tenant-a", {"name": "tenant-b2", "secret_set": "tenant_b"}, "newcomer"]}
    planned = plan(WORKFLOW, config, choose_items(WORKFLOW, config, conf, {}))
    assert [p["secret_set"] for p in planned] == ["tenant_a", "tenant_b", "shared"]

    pod_a, pod_b, pod_new = _per_item_pods(dag, planned)
    assert _secret_env(pod_a) == {"TENANT_PASSWORD": ("tenant-a-db", "password")}
    assert _secret_mounts(pod_a) == {"/var/run/tenant": "tenant-a-certs"}
    assert _secret_env(pod_b) == {"TENANT_PASSWORD": ("tenant-b-db", "password")}
    assert _secret_mounts(pod_b) == {}
    assert _secret_env(pod_new) == {"TENANT_PASSWORD": ("shared-db", "password")}  # the default set
    for pod, item in zip((pod_a, pod_b, pod_new), ("tenant-a", "tenant-b2", "newcomer"), strict=True):
        assert _plain_env(pod) == {"LOG_LEVEL": "info", "DAGFLEET_ITEM": item}
        assert pod.metadata.name.startswith(f"{item}-")
        assert "ACME_API_TOKEN" not in _secret_env(pod)  # parse-time secrets stay with pod_static


def test_config_items_keep_their_secret_set(examples: Any) -> None:
    dag = examples.bag.dags[WORKFLOW]
    config = validate_config(WORKFLOW, examples.configs[WORKFLOW])
    planned = plan(WORKFLOW, config, choose_items(WORKFLOW, config, {}, {}))
    pods = _per_item_pods(dag, planned)
    assert [_secret_env(p)["TENANT_PASSWORD"][0] for p in pods] == ["tenant-a-db", "tenant-b-db", "shared-db"]


def test_a_run_cannot_inject_secrets(examples: Any) -> None:
    config = validate_config(WORKFLOW, examples.configs[WORKFLOW])
    with pytest.raises(WorkflowConfigError, match=r"secret set 'root' is not declared in pod.secret_sets"):
        choose_items(WORKFLOW, config, {"items": [{"name": "x", "secret_set": "root"}]}, {})
    with pytest.raises(WorkflowConfigError, match=r"run field 'dag_run.conf.items\[0\].secret_specs': unknown"):
        choose_items(WORKFLOW, config, {"items": [{"name": "x", "secret_specs": [{"secret": "root"}]}]}, {})


def test_the_operator_validates_specs_it_receives(examples: Any) -> None:
    from dagfleet.authoring.operator import DagfleetPodOperator

    bad = [{"deploy_type": "env", "deploy_target": "X", "secret": "Not_Valid", "key": "k"}]
    with pytest.raises(WorkflowConfigError, match=r"task 't' field 'secret_specs\[0\].secret': 'Not_Valid' is not"):
        DagfleetPodOperator(task_id="t", image="busybox", secret_specs=bad)
