"""The Kubernetes API stand-in's rules that the harness scenarios do not all reach (tests/harness/kubeapi.py).

Selectors, watch semantics, merge patches and RBAC as Kubernetes documents them, checked on the
stand-in's own functions (no Docker, no server): the `kubernetes` scenario exercises them end to end
with the provider's code. Not marked `harness`: it runs in `make test`.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubeapi import ApiError, Store, allows, fields_match, granted_rules, labels_match, merge_patch, object_list

LABELS = {"app": "web", "tier": "front", "airflow-worker": "7"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("missing!=x", True),  # != also matches a pod without the label
        ("app=web,tier=back", False),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("app notin (db, cache)", True),
        ("missing notin (x)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,!already_checked,airflow-worker in (7, 8)", True),
        ("airflow-worker notin (7,8),app=web", False),
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    assert labels_match(selector, LABELS) is matches


def test_a_label_selector_that_does_not_parse_is_a_400() -> None:
    with pytest.raises(ApiError) as raised:
        labels_match("app in web", LABELS)
    assert raised.value.body["code"] == 400


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("status.phase=Succeeded", True),
        ("status.phase!=Succeeded", False),
        ("status.phase==Succeeded,metadata.name=p", True),
        ("involvedObject.name=other", False),
        ("spec.missing=", True),
    ],
)
def test_field_selectors(selector: str, matches: bool) -> None:
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}, "spec": {}}
    assert fields_match(selector, pod) is matches


def test_merge_patch_sets_and_removes_keys() -> None:
    pod = {"metadata": {"labels": {"a": "1", "b": "2"}, "name": "p"}}
    patched = merge_patch(pod, {"metadata": {"labels": {"b": None, "c": "3"}}})
    assert patched == {"metadata": {"labels": {"a": "1", "c": "3"}, "name": "p"}}


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels}, "status": {"phase": "Pending"}}


def test_a_watch_from_version_zero_starts_with_the_current_objects() -> None:
    store = Store()
    store.put("Pod", pod("a", app="x"), "ADDED")
    store.put("Pod", pod("b", app="y"), "ADDED")
    events = store.watch("Pod", "ns", lambda o: o["metadata"]["labels"]["app"] == "x", None, 5)
    assert next(events)[1]["metadata"]["name"] == "a"
    store.put("Pod", pod("c", app="x"), "ADDED")
    kind, obj = next(events)
    assert (kind, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]) == ("ADDED", "c", "3")


def test_a_watch_replays_the_changes_after_its_resource_version() -> None:
    store = Store()
    store.put("Pod", pod("a", app="x"), "ADDED")
    version = store.version
    store.update("Pod", "ns", "a", lambda p: p["status"].update(phase="Running"))
    store.update("Pod", "ns", "a", lambda p: p["metadata"]["labels"].update(app="y"))  # leaves the selector
    store.put("Pod", pod("b", app="x"), "ADDED")
    current = store.get("Pod", "ns", "b")
    assert current is not None
    store.put("Pod", current, "DELETED")
    events = store.watch("Pod", "ns", lambda o: o["metadata"]["labels"]["app"] == "x", version, 5)
    seen = [(kind, obj["metadata"]["name"]) for kind, obj in (next(events) for _ in range(4))]
    assert seen == [("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b"), ("DELETED", "b")]


def test_a_watch_wakes_up_for_a_change_made_while_it_waits() -> None:
    store = Store()
    events = store.watch("Pod", "ns", lambda o: True, None, 10)
    threading.Timer(0.5, lambda: store.put("Pod", pod("late"), "ADDED")).start()
    assert next(events)[1]["metadata"]["name"] == "late"


def test_an_unchanged_update_is_no_event() -> None:
    store = Store()
    store.put("Pod", pod("a"), "ADDED")
    store.update("Pod", "ns", "a", lambda p: None)
    assert store.version == 1


def test_partial_object_metadata_lists_only_metadata() -> None:
    listed = object_list("Pod", [pod("a", app="x")], 9, partial=True)
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["metadata"] == {"resourceVersion": "9"}
    assert listed["items"] == [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": pod("a", app="x")["metadata"]}]  # fmt: skip
    assert object_list("Pod", [], 9, partial=False)["kind"] == "PodList"


def test_rbac_grants_what_the_bound_roles_say_in_their_namespace() -> None:
    docs = [
        {"kind": "Role", "metadata": {"name": "launcher", "namespace": "ns"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "launcher", "namespace": "ns"},
         "roleRef": {"kind": "Role", "name": "launcher"},
         "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "ns"}]},
    ]  # fmt: skip
    rules = granted_rules(docs)
    granted = rules[("ns", "worker", "ns")]
    assert any(allows(rule, "pods", "create") for rule in granted)
    assert any(allows(rule, "pods/log", "get") for rule in granted)
    assert not any(allows(rule, "pods", "delete") for rule in granted)
    assert not any(allows(rule, "secrets", "get") for rule in granted)
    assert ("ns", "worker", "other") not in rules
    assert ("ns", "default", "ns") not in rules
