"""Run the rendered chart's pods under Docker the way a kubelet would (no Kubernetes here).

What is emulated, from the objects `helm template` rendered:
* ConfigMaps and Secrets: env (`value`, `valueFrom` secretKeyRef/configMapKeyRef/fieldRef, `envFrom`)
  and volumes (configMap, secret, projected with items and modes, group set to the pod's fsGroup);
* emptyDirs and the StatefulSets' volumeClaimTemplates: per-pod host folders, mode 0777;
* a pod is one network namespace: a pause container holds it, every container joins it, so
  containers of a pod talk over localhost as in Kubernetes;
* Services: the pause container of every pod a Service selects carries the Service's DNS names
  (`<svc>`, `<svc>.<ns>.svc`, `….cluster.local`) as aliases on a user-defined Docker network;
  the port is the target port (the chart's Services map port to the same-numbered container port);
* init containers run in order to completion; native sidecars (`restartPolicy: Always`) are
  started and left running; then the main containers; `$(VAR)` references are expanded;
* securityContext: `--user uid:gid`, `--read-only` for readOnlyRootFilesystem, `--cap-drop ALL`,
  `no-new-privileges`;
* readiness: the containers' own readinessProbe (exec, httpGet, tcpSocket) decides "ready".
Not emulated (written down in docs/harness.md): resources and limits, liveness/startup restarts,
the Kubernetes API (no ServiceAccount token), replicas above one, NetworkPolicies, PVC storage.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:4])} … failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result


def helm_binary() -> str:
    for candidate in (shutil.which("helm"), str(REPO / ".tools" / "bin" / "helm")):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("helm not found: run `make tools`")


def helm_template(values_files: Iterable[Path], release: str = "dagfleet", namespace: str = "dagfleet") -> list[dict]:
    import yaml

    args = [helm_binary(), "template", release, str(REPO / "chart"), "--namespace", namespace]
    for path in values_files:
        args += ["--values", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return VAR_REF.sub(repl, text)


@dataclass
class Pod:
    name: str
    spec: dict[str, Any]
    labels: dict[str, str]
    aliases: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # docker container names

    @property
    def pause(self) -> str:
        return f"{self.name}-pause"


class Kubelet:
    """One rendered release on one Docker network; `close()` removes every container and folder."""

    def __init__(self, docs: list[dict], workdir: Path, prefix: str, namespace: str = "dagfleet") -> None:
        self.docs = docs
        self.workdir = workdir
        self.prefix = prefix
        self.namespace = namespace
        self.network = f"{prefix}-net"
        self.pods: dict[str, Pod] = {}
        self.secrets = {d["metadata"]["name"]: self._secret_data(d) for d in docs if d["kind"] == "Secret"}
        self.config_maps = {
            d["metadata"]["name"]: {k: v.encode() for k, v in (d.get("data") or {}).items()}
            for d in docs
            if d["kind"] == "ConfigMap"
        }
        self.services = [d for d in docs if d["kind"] == "Service"]
        docker("network", "create", "--label", "dagfleet.test=harness", self.network)

    # ---------- objects ----------
    @staticmethod
    def _secret_data(doc: dict) -> dict[str, bytes]:
        data = {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (doc.get("stringData") or {}).items()})
        return data

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        """A Secret the user creates beside the release (e.g. an existing one the values name)."""
        self.secrets[name] = {k: v.encode() for k, v in data.items()}

    def add_config_map(self, name: str, data: dict[str, str]) -> None:
        """A ConfigMap the user creates beside the release (e.g. the one `templates.configMap` names)."""
        self.config_maps[name] = {k: v.encode() for k, v in data.items()}

    def update_config_map(self, name: str, data: dict[str, str]) -> None:
        """`kubectl edit configmap` and every kubelet after it: the new data in each started pod's
        configMap volume of `name`, each file replaced whole (written aside, then renamed in; a real
        kubelet swaps the whole folder at once, within about a minute)."""
        self.add_config_map(name, data)
        for pod in self.pods.values():
            gid = int((pod.spec.get("securityContext") or {}).get("fsGroup", 0))
            for volume in pod.spec.get("volumes") or []:
                source = volume.get("configMap") or {}
                if source.get("name") != name:
                    continue
                path = self.workdir / pod.name / "volumes" / volume["name"]
                aside = path.with_name(f".{volume['name']}.update")
                shutil.rmtree(aside, ignore_errors=True)
                self._files(aside, self.config_maps[name], source.get("items"), source.get("defaultMode", 0o644), gid)
                for written in sorted(p for p in aside.rglob("*") if p.is_file()):
                    written.replace(path / written.relative_to(aside))
                shutil.rmtree(aside)

    def one(self, kind: str, name: str) -> dict:
        (doc,) = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        return doc

    # ---------- volumes ----------
    def _files(self, base: Path, data: dict[str, bytes], items: list[dict] | None, mode: int, gid: int) -> None:
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else [(k, k, mode) for k in data]
        for key, path, file_mode in chosen:
            target = base / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            os.chown(target, 0, gid)
            target.chmod(file_mode)

    def _volume(self, pod: Pod, volume: dict) -> Path:
        if "hostPath" in volume:  # only the harness's own additions use it
            return Path(volume["hostPath"])
        path = self.workdir / pod.name / "volumes" / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        gid = int((pod.spec.get("securityContext") or {}).get("fsGroup", 0))
        path.chmod(0o777)
        if "configMap" in volume:
            source = volume["configMap"]
            self._files(
                path, self.config_maps[source["name"]], source.get("items"), source.get("defaultMode", 0o644), gid
            )
        elif "secret" in volume:
            source = volume["secret"]
            self._files(
                path, self.secrets[source["secretName"]], source.get("items"), source.get("defaultMode", 0o644), gid
            )
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            for source in volume["projected"]["sources"]:
                if "secret" in source:
                    data = self.secrets[source["secret"]["name"]]
                    self._files(path, data, source["secret"].get("items"), mode, gid)
                elif "configMap" in source:
                    data = self.config_maps[source["configMap"]["name"]]
                    self._files(path, data, source["configMap"].get("items"), mode, gid)
        # emptyDir and PVCs (volumeClaimTemplates): the empty, world-writable folder is all there is.
        return path

    # ---------- env ----------
    def _env(self, pod: Pod, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                env.update({k: v.decode() for k, v in self.config_maps[source["configMapRef"]["name"]].items()})
            if "secretRef" in source:
                env.update({k: v.decode() for k, v in self.secrets[source["secretRef"]["name"]].items()})
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
                continue
            ref = item.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                env[item["name"]] = self.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]].decode()
            elif "configMapKeyRef" in ref:
                source = ref["configMapKeyRef"]
                env[item["name"]] = self.config_maps[source["name"]][source["key"]].decode()
            elif "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                env[item["name"]] = {
                    "metadata.name": pod.name,
                    "metadata.namespace": self.namespace,
                    "status.podIP": self.ip(pod),
                }.get(path, "")
        return env

    # ---------- pods ----------
    def _aliases(self, labels: dict[str, str]) -> list[str]:
        names = []
        for svc in self.services:
            selector = svc["spec"].get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                name = svc["metadata"]["name"]
                names += [name, f"{name}.{self.namespace}", f"{name}.{self.namespace}.svc",
                          f"{name}.{self.namespace}.svc.cluster.local"]  # fmt: skip
        return names

    def ip(self, pod: Pod) -> str:
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return docker("inspect", "-f", fmt, pod.pause).stdout.strip()

    def _docker_args(self, pod: Pod, container: dict, mounts: dict[str, Path], detach: bool) -> list[str]:
        env = self._env(pod, container)
        sc = {**(pod.spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        name = f"{pod.name}-{container['name']}"
        args = ["run", "--name", name, "--label", "dagfleet.test=harness", "--network", f"container:{pod.pause}"]
        args += ["-d"] if detach else []
        if "runAsUser" in sc:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', 0)}"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if "ALL" in ((sc.get("capabilities") or {}).get("drop") or []):
            args += ["--cap-drop", "ALL"]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        for mount in container.get("volumeMounts") or []:
            source = mounts[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            args += ["-v", f"{source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
        command = [expand(c, env) for c in container.get("command") or []]
        rest = [expand(a, env) for a in container.get("args") or []]
        if command:
            args += ["--entrypoint", command[0], container["image"], *command[1:], *rest]
        else:
            args += [container["image"], *rest]
        return args

    def start_pod(self, name: str, template: dict, init_timeout: float = 900) -> Pod:
        """Start one pod: pause container, init containers in order (sidecars stay up), main containers."""
        pod = Pod(f"{self.prefix}-{name}", template["spec"], template["metadata"].get("labels") or {})
        pod.aliases = self._aliases(pod.labels)
        self.pods[name] = pod
        alias_args = [a for alias in pod.aliases for a in ("--network-alias", alias)]
        image = template["spec"]["containers"][0]["image"]
        pod.started.append(pod.pause)
        docker("run", "-d", "--name", pod.pause, "--label", "dagfleet.test=harness", "--hostname", pod.name[-63:],
               "--network", self.network, *alias_args, "--entrypoint", "sleep", image, "infinity")  # fmt: skip
        mounts = {v["name"]: self._volume(pod, v) for v in template["spec"].get("volumes") or []}
        for claim in template.get("volumeClaimTemplates") or []:
            mounts[claim["metadata"]["name"]] = self._volume(pod, {"name": claim["metadata"]["name"]})
        for init in template["spec"].get("initContainers") or []:
            args = self._docker_args(pod, init, mounts, detach=True)
            pod.started.append(f"{pod.name}-{init['name']}")  # before the run: a failed start leaves it created
            docker(*args)
            if init.get("restartPolicy") == "Always":
                continue  # a native sidecar: started, keeps running next to the main containers
            code = docker("wait", f"{pod.name}-{init['name']}", timeout=init_timeout).stdout.strip()
            if code != "0":
                raise RuntimeError(
                    f"init container {init['name']} of {name} exited {code}:\n{self.logs(pod, init['name'])}"
                )
        for main in template["spec"]["containers"]:
            pod.started.append(f"{pod.name}-{main['name']}")
            docker(*self._docker_args(pod, main, mounts, detach=True))
        return pod

    def start_workload(self, kind: str, name: str) -> Pod:
        doc = self.one(kind, name)
        template = {**doc["spec"]["template"], "volumeClaimTemplates": doc["spec"].get("volumeClaimTemplates")}
        return self.start_pod(name.removeprefix("dagfleet-"), template)

    def run_job(self, name: str, timeout: float = 900) -> str:
        """Run a Job's pod to completion; returns its main container's logs; raises on a non-zero exit."""
        doc = self.one("Job", name)
        pod = self.start_pod(name.removeprefix("dagfleet-"), doc["spec"]["template"])
        main = doc["spec"]["template"]["spec"]["containers"][0]["name"]
        code = docker("wait", f"{pod.name}-{main}", timeout=timeout).stdout.strip()
        logs = self.logs(pod, main)
        if code != "0":
            raise RuntimeError(f"job {name} exited {code}:\n{logs[-4000:]}")
        return logs

    def logs(self, pod: Pod, container: str) -> str:
        result = docker("logs", f"{pod.name}-{container}", check=False)
        return result.stdout + result.stderr

    # ---------- readiness ----------
    def _probe(self, pod: Pod, container: dict, probe: dict) -> bool:
        if "exec" in probe:
            result = docker("exec", f"{pod.name}-{container['name']}", *probe["exec"]["command"], check=False,
                            timeout=probe.get("timeoutSeconds", 1) + 60)  # fmt: skip
            return result.returncode == 0
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        handler = probe.get("httpGet") or probe.get("tcpSocket") or {}
        port = handler["port"]
        port = ports.get(port, port) if isinstance(port, str) else port
        if "httpGet" in probe:
            try:
                url = f"http://{self.ip(pod)}:{port}{handler.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=10) as response:
                    return 200 <= response.status < 400
            except OSError:
                return False
        try:
            with socket.create_connection((self.ip(pod), int(port)), timeout=5):
                return True
        except OSError:
            return False

    def wait_ready(self, name: str, timeout: float = 900) -> None:
        """Until every main container's readinessProbe passes (a container that exits fails the wait)."""
        pod = self.pods[name]
        deadline = time.monotonic() + timeout
        for container in pod.spec["containers"]:
            probe = container.get("readinessProbe")
            while probe and not self._probe(pod, container, probe):
                state = json.loads(docker("inspect", "-f", "{{json .State}}", f"{pod.name}-{container['name']}").stdout)
                if not state.get("Running"):
                    raise RuntimeError(
                        f"{name}/{container['name']} exited:\n{self.logs(pod, container['name'])[-4000:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}/{container['name']} not ready after {timeout:.0f} s:\n"
                                       f"{self.logs(pod, container['name'])[-4000:]}")  # fmt: skip
                time.sleep(3)

    def volume_path(self, name: str, volume: str) -> Path:
        return self.workdir / self.pods[name].name / "volumes" / volume

    def close(self) -> None:
        for pod in self.pods.values():
            names = list(reversed(pod.started))
            if names:
                docker("rm", "-f", "-v", *names, check=False, timeout=180)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---------- for the Kubernetes API stand-in (tests/harness/kubeapi.py) ----------
    def remove_pod(self, name: str) -> None:
        """What a kubelet does when a pod is deleted: its containers stop and go, its folders too."""
        pod = self.pods.pop(name, None)
        if pod is None:
            return
        if pod.started:
            docker("rm", "-f", "-v", *reversed(pod.started), check=False, timeout=180)
        shutil.rmtree(self.workdir / pod.name, ignore_errors=True)

    def missing_reference(self, spec: dict[str, Any]) -> str | None:
        """Why a kubelet could not start this pod's containers (a Secret, ConfigMap or key it names is missing)."""
        kinds = {"secret": ("Secret", self.secrets), "configMap": ("ConfigMap", self.config_maps)}
        refs = []
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            for item in container.get("env") or []:
                ref = item.get("valueFrom") or {}
                refs += [("secret", r["name"], r["key"]) for r in [ref.get("secretKeyRef")] if r]
                refs += [("configMap", r["name"], r["key"]) for r in [ref.get("configMapKeyRef")] if r]
            for source in container.get("envFrom") or []:
                refs += [("secret", r["name"], None) for r in [source.get("secretRef")] if r]
                refs += [("configMap", r["name"], None) for r in [source.get("configMapRef")] if r]
        for volume in spec.get("volumes") or []:
            for key, source in (("secret", volume.get("secret")), ("configMap", volume.get("configMap"))):
                if source:
                    name = source.get("secretName") or source.get("name")
                    refs += [(key, name, None)] + [(key, name, i["key"]) for i in source.get("items") or []]
        for key, name, item in refs:
            kind, objects = kinds[key]
            if name not in objects:
                return f'{kind.lower()} "{name}" not found'
            if item is not None and item not in objects[name]:
                return f"couldn't find key {item} in {kind} {self.namespace}/{name}"
        return None


def inspect(name: str) -> dict[str, Any] | None:
    """`docker inspect` of one container, or None when it does not exist (yet, or any more)."""
    result = docker("inspect", "--type", "container", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def _k8s_time(docker_time: str) -> str:
    return docker_time[:19] + "Z"  # Docker's RFC 3339 with nanoseconds, as Kubernetes' seconds


def container_status(container: dict[str, Any], info: dict[str, Any] | None) -> dict[str, Any]:
    """A containerStatus as a kubelet reports it, from the Docker container's state (None: not created)."""
    status = {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
              "restartCount": 0, "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}  # fmt: skip
    if info is None:
        return status
    state = info["State"]
    status.update(imageID=info["Image"], containerID=f"docker://{info['Id']}")
    if state["Running"]:
        status.update(ready=True, started=True, state={"running": {"startedAt": _k8s_time(state["StartedAt"])}})
    elif state["Status"] in ("exited", "dead"):
        code = int(state["ExitCode"])
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        status["state"] = {"terminated": {"exitCode": code, "reason": reason, "containerID": status["containerID"],
                                          "startedAt": _k8s_time(state["StartedAt"]),
                                          "finishedAt": _k8s_time(state["FinishedAt"])}}  # fmt: skip
    return status


def pod_phase(statuses: list[dict[str, Any]]) -> str:
    """The phase of a pod whose restartPolicy is Never, from its main containers' statuses."""
    states = [s["state"] for s in statuses]
    if any("running" in s for s in states):
        return "Running"
    if states and all("terminated" in s for s in states):
        return "Succeeded" if all(s["terminated"]["exitCode"] == 0 for s in states) else "Failed"
    return "Pending"
