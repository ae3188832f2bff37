"""Issue #30 in the Local, Celery and Kubernetes scenarios: a run keeps the config and template it started with.

The release serves three workflows of the harness template `pin` beside the example workflows
(tests/harness/fleet/, added by release.py). Its task `first` waits for an Airflow Variable (the
gate); then `first` and `second` each return "<spec.value>/<template MARK>" as XCom, read back
through the REST API whichever executor ran them (scheduler pod, Celery worker, task pod).

With the gate closed, run A of each workflow starts. Then, as `kubectl edit configmap` and the
kubelets would (every pod's volume of the ConfigMap rewritten):

1. the config API's workflows file: pin_spec's `spec.value` v1 -> v2, pin_removed removed;
   run B of pin_spec starts once Airflow has the change;
2. the templates ConfigMap: MARK t1 -> t2 (the template of all three);
   run B of pin_template starts once Airflow has the change.

Each change waits until every pod with a dag-sync sidecar has published a new fleet version (read
on the host from the pod's dags emptyDir), so every pod holds every version a run can pin. Then the
gate opens: both tasks of every run A saw v1/t1; run B of pin_spec v2/t1 (the later template edit
does not reach it either); run B of pin_template v1/t2; A's and B's task instances are on different
DAG versions and bundle versions. pin_removed's DAG stays (not stale) with its schedule off (a new
DAG version), its run A finishes on v1/t1, and no other run of it exists.

Afterwards both ConfigMaps are restored and the gate stays open, for the harness modules after this.
`DAGFLEET_HARNESS_VALUES` with the plain-folder bundle list makes this test fail (docs/harness.md).
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from release import RUN_TIMEOUT, TEMPLATES_CONFIG_MAP, Api, Release

from dagfleet.fleet import versions
from support.wait import wait_until

pytestmark = pytest.mark.harness

GATE = "dagfleet_pin_gate"  # the Variable the template's `first` waits for
CONFIG_API_CONFIG_MAP = "dagfleet-config-api"
SPEC, TEMPLATE, REMOVED = "pin_spec", "pin_template", "pin_removed"
TIMEOUT = 300


class Fleet:
    """The two ConfigMaps the test edits, the pods that sync them, and the way back."""

    def __init__(self, release: Release) -> None:
        self.kubelet = release.kubelet
        self.original = {name: self.data(name) for name in (CONFIG_API_CONFIG_MAP, TEMPLATES_CONFIG_MAP)}
        self.syncing = [
            name
            for name, pod in list(self.kubelet.pods.items())
            if any(c["name"] == "dag-sync" for c in pod.spec.get("initContainers") or [])
        ]
        assert self.syncing, "no pod with a dag-sync sidecar"

    def data(self, config_map: str) -> dict[str, str]:
        return {key: value.decode() for key, value in self.kubelet.config_maps[config_map].items()}

    def current(self) -> dict[str, str | None]:
        """Each syncing pod's current fleet version, from its dags emptyDir."""
        return {name: versions.current(self.kubelet.volume_path(name, "dags")) for name in self.syncing}

    def change(self, config_map: str, edit: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Edit a ConfigMap; wait until every syncing pod has published a new fleet version."""
        before = self.current()
        self.kubelet.update_config_map(config_map, edit(self.data(config_map)))
        wait_until(
            f"every dag-sync sidecar ({', '.join(self.syncing)}) to publish the change of {config_map}",
            lambda: all(now not in (None, before[name]) for name, now in self.current().items()),
            TIMEOUT,
            every=2,
        )

    def restore(self, api: Api, wait: bool) -> None:
        """Both ConfigMaps as the release started, the gate open (no run waits on it any more)."""
        set_gate(api, is_open=True)
        before = self.current()
        for name, data in self.original.items():
            self.kubelet.update_config_map(name, data)
        if wait:

            def settled() -> bool:
                now = self.current()
                return len(set(now.values())) == 1 and all(now[name] != before[name] for name in now)

            wait_until("every dag-sync sidecar to publish the restored fleet", settled, TIMEOUT, every=2)


def _spec_v2_and_removed(data: dict[str, str]) -> dict[str, str]:
    served = yaml.safe_load(data["workflows.yaml"])
    served["workflows"][SPEC]["spec"]["value"] = "v2"
    del served["workflows"][REMOVED]
    return {**data, "workflows.yaml": yaml.safe_dump(served)}


def _template_t2(data: dict[str, str]) -> dict[str, str]:
    assert 'MARK = "t1"' in data["pin.py"]
    return {**data, "pin.py": data["pin.py"].replace('MARK = "t1"', 'MARK = "t2"')}


# A busy machine (2 shared cores) can make one api-server call time out: a poll counts it as "not yet".
TRANSIENT = (TimeoutError, ConnectionError, urllib.error.URLError)


def polled(check: Callable[[], Any]) -> Callable[[], Any]:
    """``check`` for wait_until, with a slow or unreachable api-server counted as "not yet"."""

    def attempt() -> Any:
        try:
            return check()
        except urllib.error.HTTPError:
            raise
        except TRANSIENT:
            return None

    return attempt


def get(api: Api, path: str) -> Any:
    """One GET, tried again after a transient failure (GETs only: they change nothing)."""
    return wait_until(f"GET {path}", polled(lambda: api.call("GET", path)), TIMEOUT, every=3)


def set_gate(api: Api, is_open: bool) -> None:
    try:
        api.call("DELETE", f"/api/v2/variables/{GATE}")
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise
    if is_open:
        api.call("POST", "/api/v2/variables", {"key": GATE, "value": "open"})


def dag_versions(api: Api, dag_id: str) -> int:
    try:
        return get(api, f"/api/v2/dags/{dag_id}/dagVersions")["total_entries"]
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return 0
        raise


def wait_new_dag_version(api: Api, dag_id: str, before: int) -> None:
    what = f"the change to reach Airflow as a new DAG version of {dag_id}"
    wait_until(what, polled(lambda: dag_versions(api, dag_id) > before), TIMEOUT, every=3)


def task_state(api: Api, run: str, task_id: str) -> str | None:
    return get(api, f"{run}/taskInstances/{task_id}")["state"]


def finished(api: Api, run: str) -> list[dict[str, Any]]:
    """The run's task instances once it finished; fails unless it succeeded."""

    def done() -> str | None:
        state = get(api, run)["state"]
        return state if state in ("success", "failed") else None

    state = wait_until(f"{run} to finish", done, RUN_TIMEOUT, every=5)
    tis = get(api, f"{run}/taskInstances?limit=100")["task_instances"]
    assert state == "success", (run, sorted((t["task_id"], t["state"]) for t in tis))
    return tis


def saw(api: Api, run: str) -> dict[str, str]:
    """task ID -> the "<spec.value>/<MARK>" its XCom says it ran with."""
    seen = {}
    for task_id in ("first", "second"):
        value = get(api, f"{run}/taskInstances/{task_id}/xcomEntries/return_value")["value"]
        seen[task_id] = json.loads(value) if isinstance(value, str) and value.startswith('"') else value
    return seen


def dag_versions_of(tis: list[dict[str, Any]]) -> set[tuple[int, str | None]]:
    return {(ti["dag_version"]["version_number"], ti["dag_version"]["bundle_version"]) for ti in tis}


def _start_runs_a(api: Api) -> dict[str, str]:
    """Run A of each workflow, its first task running (the Celery scenario's worker has three slots)."""
    for dag_id in (SPEC, TEMPLATE, REMOVED):
        wait_until(f"DAG {dag_id}", lambda d=dag_id: dag_versions(api, d) > 0, TIMEOUT, every=3)
    runs = {dag_id: api.trigger(dag_id) for dag_id in (SPEC, TEMPLATE, REMOVED)}
    for dag_id, run in runs.items():
        what = f"run A's task first of {dag_id} to run"
        wait_until(what, lambda r=run: task_state(api, r, "first") == "running", TIMEOUT, every=2)
    return runs


def _removed_run_finishes(api: Api, run_a: str, versions_before: int) -> None:
    """The removed workflow's DAG: a new version without a schedule, never stale while run A is
    active; run A finishes on the config it started with; nothing else was scheduled."""
    wait_new_dag_version(api, REMOVED, versions_before)
    dag = get(api, f"/api/v2/dags/{REMOVED}")
    assert (dag["timetable_summary"], dag["is_stale"]) == (None, False), dag
    finished(api, run_a)
    assert saw(api, run_a) == {"first": "v1/t1", "second": "v1/t1"}
    runs = get(api, f"/api/v2/dags/{REMOVED}/dagRuns")["dag_runs"]
    assert [f"/api/v2/dags/{REMOVED}/dagRuns/{r['dag_run_id']}" for r in runs] == [run_a]


@pytest.mark.scenarios("local", "celery", "kubernetes")
@pytest.mark.timeout(1800)  # the first test of a scenario also pays for starting its release
def test_a_run_keeps_the_config_and_template_it_started_with(release: Release) -> None:
    api = release.api
    assert api is not None
    fleet = Fleet(release)
    try:
        _pinned(api, fleet)
    except BaseException:
        fleet.restore(api, wait=False)
        raise
    fleet.restore(api, wait=True)


def _pinned(api: Api, fleet: Fleet) -> None:
    set_gate(api, is_open=False)
    run_a = _start_runs_a(api)
    before = {dag_id: dag_versions(api, dag_id) for dag_id in run_a}
    assert get(api, f"/api/v2/dags/{REMOVED}")["timetable_summary"] == "0 0 1 1 *"

    fleet.change(CONFIG_API_CONFIG_MAP, _spec_v2_and_removed)
    wait_new_dag_version(api, SPEC, before[SPEC])
    run_b = {SPEC: api.trigger(SPEC)}
    fleet.change(TEMPLATES_CONFIG_MAP, _template_t2)
    wait_new_dag_version(api, TEMPLATE, before[TEMPLATE])
    run_b[TEMPLATE] = api.trigger(TEMPLATE)
    set_gate(api, is_open=True)

    expected = {(SPEC, "A"): "v1/t1", (SPEC, "B"): "v2/t1", (TEMPLATE, "A"): "v1/t1", (TEMPLATE, "B"): "v1/t2"}
    runs = {(SPEC, "A"): run_a[SPEC], (SPEC, "B"): run_b[SPEC],
            (TEMPLATE, "A"): run_a[TEMPLATE], (TEMPLATE, "B"): run_b[TEMPLATE]}  # fmt: skip
    tis = {key: finished(api, run) for key, run in runs.items()}
    seen = {key: saw(api, run) for key, run in runs.items()}
    want = {key: {"first": value, "second": value} for key, value in expected.items()}
    assert seen == want, f"what each run's tasks ran with: {seen}"
    for dag_id in (SPEC, TEMPLATE):
        a, b = dag_versions_of(tis[dag_id, "A"]), dag_versions_of(tis[dag_id, "B"])
        assert len(a) == len(b) == 1, (dag_id, a, b)  # every task of a run on one DAG version
        (number_a, bundle_a), (number_b, bundle_b) = *a, *b
        assert number_a != number_b and bundle_a != bundle_b, (dag_id, a, b)
    _removed_run_finishes(api, run_a[REMOVED], before[REMOVED])
