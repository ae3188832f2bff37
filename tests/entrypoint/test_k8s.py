"""Kubernetes pieces of a DAG (dagfleet.authoring.operator): secret specs, resources, pod names, the pod operator.

What crosses a task boundary is plain JSON; these functions turn it into the Kubernetes objects
KubernetesPodOperator expects, validating it again on the way (a run cannot smuggle in a secret).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import models as k8s

from dagfleet.authoring.operator import (
    ITEM_ENV,
    MAX_POD_NAME_BASE,
    DagfleetPodOperator,
    parse_secret_specs,
    pod_name,
    to_resources,
    to_secret,
    to_secrets,
)
from dagfleet.fleet.config import Resources, SecretSpec
from dagfleet.fleet.errors import WorkflowConfigError

ENV_SPEC = {"deploy_type": "env", "deploy_target": "DB_PASSWORD", "secret": "tenant-a-db", "key": "password"}
VOLUME_SPEC = {"deploy_type": "volume", "deploy_target": "/var/run/certs", "secret": "tenant-a-certs", "key": None}
KEYED_VOLUME = {"deploy_type": "volume", "deploy_target": "/etc/tls", "secret": "tls", "key": "ca.crt"}


def _secret(secret: Any) -> tuple[Any, ...]:
    return (secret.deploy_type, secret.deploy_target, secret.secret, secret.key)


def test_specs_become_secrets() -> None:
    env, volume, keyed = to_secrets([ENV_SPEC, VOLUME_SPEC, KEYED_VOLUME])
    assert _secret(env) == ("env", "DB_PASSWORD", "tenant-a-db", "password")
    assert _secret(volume) == ("volume", "/var/run/certs", "tenant-a-certs", None)
    assert _secret(keyed) == ("volume", "/etc/tls", "tls", "ca.crt")


def test_a_keyed_volume_secret_mounts_only_that_key() -> None:
    keyed = to_secret(SecretSpec(**KEYED_VOLUME))
    assert keyed.items == [k8s.V1KeyToPath(key="ca.crt", path="ca.crt")]
    assert not to_secret(SecretSpec(**VOLUME_SPEC)).items  # the whole secret
    assert not to_secret(SecretSpec(**ENV_SPEC)).items


def test_specs_are_validated_with_the_owner_in_the_line() -> None:
    bad = {**ENV_SPEC, "deploy_target": "db-password"}
    with pytest.raises(WorkflowConfigError) as err:
        parse_secret_specs([ENV_SPEC, bad], owner="acme_sync")
    message = str(err.value)
    assert "acme_sync" in message
    assert "secret_specs[1].deploy_target" in message
    assert "not a valid environment variable name" in message
    assert "\n" not in message
    assert "Value error" not in message


def test_specs_accept_models_and_json_alike() -> None:
    parsed = parse_secret_specs([SecretSpec(**ENV_SPEC), VOLUME_SPEC])
    assert [s.model_dump() for s in parsed] == [ENV_SPEC, VOLUME_SPEC]


def test_resources() -> None:
    assert to_resources(None) is None
    built = to_resources({"requests": {"cpu": "100m", "memory": "64Mi"}})
    assert built == k8s.V1ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"}, limits=None)
    model = Resources(limits={"memory": "1Gi"})
    assert to_resources(model) == k8s.V1ResourceRequirements(requests=None, limits={"memory": "1Gi"})
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        to_resources({"limits": {"cpu": "lots"}})


@pytest.mark.parametrize(
    ("item", "name"),
    [
        ("tenant-a", "tenant-a"),
        ("Tenant_A.B", "tenant-a-b"),
        ("--edge--", "edge"),
        ("___", "item"),
        ("", "item"),
        ("x" * 80, "x" * MAX_POD_NAME_BASE),
        ("a" * 49 + "_b", "a" * 49),  # cut at 50, then no trailing '-'
    ],
)
def test_pod_name_is_a_dns_label_base(item: str, name: str) -> None:
    assert pod_name(item) == name


def _env(operator: DagfleetPodOperator) -> dict[str, str]:
    """The operator's env as given: a mapping stays one, a list holds ``V1EnvVar``s."""
    env = operator.env_vars
    return dict(env) if isinstance(env, dict) else {e.name: e.value for e in env}


def test_the_operator_turns_json_into_kubernetes_objects() -> None:
    operator = DagfleetPodOperator(
        task_id="pod",
        image="busybox",
        namespace="jobs",
        env_vars={"LOG_LEVEL": "info"},
        secret_specs=[ENV_SPEC, KEYED_VOLUME],
        resources={"limits": {"memory": "128Mi"}},
        item="tenant-a",
    )
    assert _env(operator) == {"LOG_LEVEL": "info", ITEM_ENV: "tenant-a"}
    assert operator.item == "tenant-a"
    assert operator.container_resources == k8s.V1ResourceRequirements(limits={"memory": "128Mi"})
    assert [_secret(s) for s in operator.secrets] == [
        ("env", "DB_PASSWORD", "tenant-a-db", "password"),
        ("volume", "/etc/tls", "tls", "ca.crt"),
    ]
    assert operator.secret_specs == [ENV_SPEC, KEYED_VOLUME]  # JSON again: it crosses task boundaries


def test_the_operator_keeps_what_it_was_given() -> None:
    """Env as a list, explicit container_resources and plain ``secrets`` are kept, not replaced."""
    given = k8s.V1ResourceRequirements(requests={"cpu": "1"})
    operator = DagfleetPodOperator(
        task_id="pod",
        image="busybox",
        namespace="jobs",
        env_vars=[k8s.V1EnvVar(name="A", value="1")],
        container_resources=given,
        resources={"limits": {"memory": "128Mi"}},
        secrets=to_secrets([VOLUME_SPEC]),
        secret_specs=[ENV_SPEC],
        item="b",
    )
    assert _env(operator) == {"A": "1", ITEM_ENV: "b"}
    assert operator.container_resources == given
    assert [s.secret for s in operator.secrets] == ["tenant-a-certs", "tenant-a-db"]


def test_the_operator_without_json_is_a_plain_pod_operator() -> None:
    operator = DagfleetPodOperator(task_id="pod", image="busybox", namespace="jobs")
    assert operator.secret_specs == []
    assert operator.secrets == []
    assert operator.item is None
    assert ITEM_ENV not in _env(operator)


DUPLICATE_ENV = [ENV_SPEC, {**ENV_SPEC, "secret": "other-db"}]
DUPLICATE_MOUNT = [VOLUME_SPEC, {**KEYED_VOLUME, "deploy_target": VOLUME_SPEC["deploy_target"]}]


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        (DUPLICATE_ENV, "environment variable 'DB_PASSWORD' is used by more than one secret"),
        (DUPLICATE_MOUNT, "mount path '/var/run/certs' is used by more than one secret"),
    ],
)
def test_the_operator_rejects_a_target_used_twice_like_the_config(specs: list[Any], problem: str) -> None:
    """Issue #28: the same check as the config's pod.secrets (one implementation), at parse time."""
    from dagfleet.fleet.config import validate_config

    with pytest.raises(WorkflowConfigError) as config_err:
        validate_config("acme", {"pod": {"image": "busybox", "secrets": specs}})
    assert problem in str(config_err.value)
    with pytest.raises(WorkflowConfigError) as err:
        DagfleetPodOperator(task_id="load", image="busybox", namespace="ns", secret_specs=specs)
    line = str(err.value)
    assert line == (
        f"workflow 'load': task 'load' field 'secret_specs': {problem}; "
        "fix it in the secret_specs the template passes to PodOperator"
    )


def test_the_error_names_where_the_specs_came_from() -> None:
    from dagfleet import pod_kwargs

    from_spec = {"item": "orders", "secret_specs": DUPLICATE_ENV, "secret_specs_from": "the template's spec.tables"}
    with pytest.raises(WorkflowConfigError) as err:
        DagfleetPodOperator(task_id="load", image="busybox", namespace="ns", **pod_kwargs(from_spec))
    assert "task 'load' (item 'orders') field 'secret_specs'" in str(err.value)
    assert str(err.value).endswith("; fix it in the template's spec.tables")
    from_set = {"item": "orders", "secret_set": "tenant_a", "secret_specs": [{**ENV_SPEC, "secret": "Bad"}]}
    with pytest.raises(WorkflowConfigError) as err:
        DagfleetPodOperator(task_id="load", image="busybox", namespace="ns", **pod_kwargs(from_set))
    assert "field 'secret_specs[0].secret'" in str(err.value)
    assert str(err.value).endswith("fix it in the config's pod.secret_sets['tenant_a']")
    ok = DagfleetPodOperator(
        task_id="load", image="busybox", namespace="ns", **pod_kwargs({**from_set, "secret_specs": [ENV_SPEC]})
    )
    assert [s.deploy_target for s in ok.secrets] == ["DB_PASSWORD"]
