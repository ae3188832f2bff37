"""Kubernetes pieces of a workflow DAG: secret specs -> ``Secret`` objects, and the pod operator.

``Secret`` objects cannot travel through XCom, so a mapped pod task cannot receive them from an
upstream task. Here everything that crosses a task boundary is plain JSON (``secret_specs``,
``resources``) and ``DagfleetPodOperator`` turns it into Kubernetes objects itself, in the worker,
when the (mapped) task is created. The specs are validated again there with the config model:
a run can only use secret sets the workflow's config declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s
from pydantic import TypeAdapter, ValidationError

from dagfleet.fleet.config import PodSecretSpecs, Resources, SecretSpec, config_error, field_path

ITEM_ENV = "DAGFLEET_ITEM"
MAX_POD_NAME_BASE = 50  # the operator appends a random suffix; 63 is the label limit for pod names

_SPECS = TypeAdapter(PodSecretSpecs)
# Where specs came from, for the error's "fix it in ...": PodOperator(secret_specs_from=...).
FROM_SECRET_SETS = "the config's pod.secret_sets"  # noqa: S105 - a field name, not a password
FROM_TEMPLATE = "the secret_specs the template passes to PodOperator"


def parse_secret_specs(
    specs: Iterable[Any], owner: str = "pod", where: str = "pod", source: str = FROM_SECRET_SETS
) -> list[SecretSpec]:
    """Validate one pod's JSON secret specs like the config's: each spec, then every environment
    variable and mount path at most once. The one-line error names the workflow (``owner``), the
    task/item (``where``) and where the specs came from (``source``: what to fix)."""
    specs = list(specs)
    try:
        return _SPECS.validate_python([s.model_dump() if isinstance(s, SecretSpec) else s for s in specs])
    except ValidationError as err:
        problems = [
            (field_path(d["loc"], "secret_specs"), str(d["msg"]).removeprefix("Value error, "))
            for d in err.errors(include_url=False)
        ]
        raise config_error(owner, problems, where, source) from None


def to_secret(spec: SecretSpec) -> Secret:
    """A volume secret with a ``key`` mounts only that key, as the file ``<mount path>/<key>``."""
    if spec.deploy_type == "volume" and spec.key is not None:
        items = [k8s.V1KeyToPath(key=spec.key, path=spec.key)]
        return Secret(spec.deploy_type, spec.deploy_target, spec.secret, spec.key, items=items)
    return Secret(spec.deploy_type, spec.deploy_target, spec.secret, spec.key)


def to_secrets(specs: Iterable[SecretSpec | Mapping[str, Any]], owner: str = "pod", **where: str) -> list[Secret]:
    return [to_secret(spec) for spec in parse_secret_specs(specs, owner, **where)]


def to_resources(resources: Resources | Mapping[str, Any] | None) -> k8s.V1ResourceRequirements | None:
    if resources is None:
        return None
    checked = resources if isinstance(resources, Resources) else Resources.model_validate(resources)
    return k8s.V1ResourceRequirements(requests=checked.requests or None, limits=checked.limits or None)


def pod_name(item: str) -> str:
    """A DNS-1123 pod name base for an item (the operator adds a random suffix)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", item.lower()).strip("-")[:MAX_POD_NAME_BASE].strip("-")
    return slug or "item"


class DagfleetPodOperator(KubernetesPodOperator):
    """``KubernetesPodOperator`` that also takes JSON: ``secret_specs``, ``resources`` and ``item``.

    * ``secret_specs``: ``[{"deploy_type": "env"|"volume", "deploy_target", "secret", "key"}]``,
      validated and added to ``secrets`` (so ``expand_kwargs`` can choose them per item);
    * ``resources``: ``{"requests": {...}, "limits": {...}}`` -> ``container_resources``;
    * ``item``: the mapped item; exported to the container as ``$DAGFLEET_ITEM`` (``$(DAGFLEET_ITEM)``
      in ``arguments`` is expanded by Kubernetes) and shown as the map index;
    * ``secret_specs_from``: where the specs came from, named in the error as what to fix
      (default: the template's own ``secret_specs``; ``pod_kwargs`` names the config's secret set).
    """

    def __init__(
        self,
        *,
        secret_specs: list[dict[str, Any]] | None = None,
        resources: Mapping[str, Any] | None = None,
        item: str | None = None,
        secret_specs_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        if resources is not None and kwargs.get("container_resources") is None:
            kwargs["container_resources"] = to_resources(resources)
        if item is not None:
            env = kwargs.get("env_vars") or {}
            if isinstance(env, Mapping):
                kwargs["env_vars"] = {**env, ITEM_ENV: item}
            else:
                kwargs["env_vars"] = [*env, k8s.V1EnvVar(name=ITEM_ENV, value=item)]
        super().__init__(**kwargs)
        owner = f"{self.dag_id}" if self.has_dag() else self.task_id
        where = f"task {self.task_id!r}" + (f" (item {item!r})" if item is not None else "")
        checked = parse_secret_specs(secret_specs or [], owner, where, secret_specs_from or FROM_TEMPLATE)
        self.secret_specs = [spec.model_dump() for spec in checked]
        self.secrets = [*self.secrets, *(to_secret(spec) for spec in checked)]
        self.item = item
        self.secret_specs_from = secret_specs_from
