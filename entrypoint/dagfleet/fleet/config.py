"""The workflow config model: what one workflow's JSON from the config API may say (docs/config.md).

Pydantic only (no Airflow import): ``dagfleet sync`` validates every config with it before
storing it, and the base DAG validates again at parse time. ``validate_config`` turns every
problem into one line naming the workflow, the field and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from dagfleet.fleet.assets import AssetCondition, asset_uri, is_condition, parse_condition
from dagfleet.fleet.errors import WorkflowConfigError, clip, json_path
from dagfleet.fleet.workflow_ids import TEMPLATE_NAME

DEFAULT_START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_ITEMS = ("item-1", "item-2", "item-3")
PRESETS = frozenset({"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})
MAX_PROBLEMS_SHOWN = 8
MAX_LINE = 4000  # characters of the problems in one workflow's line (docs/config.md, "Errors")

# Kubernetes name rules (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/).
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
DNS_LABEL = re.compile(_DNS_LABEL)
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?")
RESOURCE_NAME = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")
ITEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# Scheduling names (docs/config.md): Airflow pools, Celery queues, executors, connection IDs.
POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,255}")
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
EXECUTOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,20}")
CONN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")
_DURATION_KEYS = frozenset({"days", "hours", "minutes", "seconds"})
_DURATION_HINT = "a duration: seconds, {'minutes': 30}-style object or ISO 8601 like 'PT30M'"


def _shown(value: object, limit: int = 60) -> str:
    """A value as it may appear in a log line: escaped, ASCII only, cut at ``limit`` characters."""
    return clip(ascii(value), limit)


def _names_validator(field: str, pattern: re.Pattern[str], problem: str) -> Any:
    """A pydantic validator of ``field`` (a mapping, or a list, of names): ValueError(``problem``
    with the first name ``pattern`` does not match filled in)."""

    def check(cls: type, value: Iterable[str]) -> Iterable[str]:
        for name in value:
            if not pattern.fullmatch(name):
                raise ValueError(problem.format(_shown(name)))
        return value

    return field_validator(field)(check)


# -- small value parsers ---------------------------------------------------------------------
def _duration(value: Any) -> timedelta:
    """Seconds (number), ``{"days"|"hours"|"minutes"|"seconds": n}`` or an ISO 8601 duration."""
    try:
        return _parse_duration(value)
    except (OverflowError, ArithmeticError):  # timedelta's own bound: 999,999,999 days
        raise ValueError(f"{_shown(value)} is too long a duration (at most 999999999 days)") from None


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HINT}, got a boolean")
    elif isinstance(value, int | float):
        result = timedelta(seconds=value)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - _DURATION_KEYS)
        if unknown or not value:
            raise ValueError(f"a duration object takes days, hours, minutes and seconds, got {sorted(value)}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
            raise ValueError("duration values must be numbers")
        result = timedelta(**{k: float(v) for k, v in value.items()})
    elif isinstance(value, str) and value.upper().startswith("P"):
        try:
            result = TypeAdapter(timedelta).validate_python(value)
        except ValidationError:
            raise ValueError(f"{_shown(value)} is not an ISO 8601 duration like 'PT30M'") from None
    else:
        raise ValueError(f"expected {_DURATION_HINT}, got {_shown(value)}")
    if result <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return result


def _schedule(value: Any) -> str | timedelta | AssetCondition | None:
    if value is None or isinstance(value, AssetCondition):
        return value
    if is_condition(value):
        return parse_condition(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        if text.startswith("@"):
            if text not in PRESETS:
                raise ValueError(f"{_shown(value)} is not a preset; use one of {', '.join(sorted(PRESETS))}")
            return text
        if text.upper().startswith("P"):
            return _duration(text)
        return _cron(text)
    if isinstance(value, Mapping):
        return _duration(value)
    raise ValueError(
        "expected null, a preset like '@daily', a cron expression like '0 3 * * *', "
        f"a duration like {{'minutes': 30}} / 'PT30M' or assets like {{'assets': ['s3://b/k']}}, got {_shown(value)}"
    )


def _cron(text: str) -> str:
    from croniter import croniter  # small; Airflow uses it for cron schedules too

    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"{_shown(text)} is not a 5-field cron expression (minute hour day month weekday)")
    try:
        croniter(text)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{_shown(text)} is not a valid cron expression ({clip(err)})") from None
    return text


def _start_date(value: Any) -> datetime:
    if isinstance(value, str | datetime):
        try:
            parsed = TypeAdapter(datetime).validate_python(value)
        except ValidationError:
            raise ValueError(f"{_shown(value)} is not an ISO 8601 date or date-time like '2024-01-01'") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"expected an ISO 8601 date like '2024-01-01', got {_shown(value)}")


def _named(pattern: re.Pattern[str], what: str) -> Any:
    """A BeforeValidator: a string ``pattern`` matches in full, else ValueError naming ``what``."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a valid {what}")
        return value

    return BeforeValidator(check)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
PoolName = Annotated[str, _named(POOL_NAME, "pool name (letters, digits, '_', '.', '-'; at most 256)")]
QueueName = Annotated[str, _named(QUEUE_NAME, "queue name (letters, digits, '_', '.', ':', '-'; at most 200)")]
ExecutorName = Annotated[str, _named(EXECUTOR_NAME, "executor name (a class name, alias or module path)")]
ConnId = Annotated[str, _named(CONN_ID, "Airflow connection ID (letters, digits, '_', '.', '-'; at most 250)")]
AssetUri = Annotated[str, BeforeValidator(asset_uri)]


# -- models ----------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSpec(_Model):
    """One Kubernetes secret to expose in a pod; mirrors ``airflow...kubernetes.secret.Secret``."""

    deploy_type: Literal["env", "volume"]
    deploy_target: str
    secret: str
    key: str | None = Field(default=None, validate_default=True)

    @field_validator("deploy_target")
    @classmethod
    def _check_target(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("deploy_type")
        if kind == "env" and not ENV_NAME.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} is not a valid environment variable name "
                "(upper-case letters, digits and '_', not starting with a digit)"
            )
        if kind == "volume":
            parts = value.split("/")
            if not value.startswith("/") or value == "/" or ".." in parts or ":" in value:
                raise ValueError(f"{_shown(value)} is not a valid mount path (absolute, not '/', no '..' or ':')")
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} is not a valid Kubernetes secret name "
                "(lower-case letters, digits, '-' and '.', at most 253)"
            )
        return value

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("deploy_type") == "env":
                raise ValueError("an 'env' secret needs the 'key' to read from the Kubernetes secret")
            return None
        if len(value) > 253 or value in {".", ".."} or not SECRET_KEY.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a valid Kubernetes secret key (letters, digits, '-', '_', '.')")
        return value


def _check_unique_targets(specs: list[SecretSpec]) -> list[SecretSpec]:
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        target = (spec.deploy_type, spec.deploy_target)
        if target in seen:
            what = "environment variable" if spec.deploy_type == "env" else "mount path"
            raise ValueError(f"{what} {spec.deploy_target!r} is used by more than one secret")
        seen.add(target)
    return specs


SecretSpecs = Annotated[list[SecretSpec], Field(max_length=64)]
# One list of specs as a pod gets it: the same checks as the config's (each spec, then each
# environment variable and mount path at most once). PodOperator(secret_specs=...) uses it too.
PodSecretSpecs = Annotated[SecretSpecs, AfterValidator(_check_unique_targets)]


class Resources(_Model):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _check_quantities(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        checked = {}
        for name, quantity in value.items():
            if not isinstance(name, str) or not RESOURCE_NAME.fullmatch(name):
                raise ValueError(f"{_shown(name)} is not a resource name like 'cpu' or 'memory'")
            text = str(quantity) if isinstance(quantity, int | float) and not isinstance(quantity, bool) else quantity
            if not isinstance(text, str) or not QUANTITY.fullmatch(text):
                raise ValueError(f"{name}: {_shown(quantity)} is not a Kubernetes quantity like '500m' or '1Gi'")
            checked[name] = text
        return checked


class PodSpec(_Model):
    image: str
    cmds: list[str] = Field(default_factory=list)
    arguments: list[str] = Field(default_factory=list)
    # None: the namespace of the kubernetes_default connection (the chart sets its podNamespace
    # there, where its Role lets Airflow create pods), else the namespace Airflow runs in.
    namespace: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    service_account_name: str | None = None
    secrets: SecretSpecs = Field(default_factory=list)
    per_item: StrictBool = False
    secret_sets: dict[str, SecretSpecs] = Field(default_factory=dict)
    default_secret_set: str | None = None
    startup_timeout_seconds: int = Field(default=120, ge=1, le=3600)

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"{_shown(value)} is not a container image reference")
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > 63 or not DNS_LABEL.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a valid Kubernetes namespace name")
        return value

    @field_validator("service_account_name")
    @classmethod
    def _check_service_account(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value)):
            raise ValueError(f"{_shown(value)} is not a valid Kubernetes service account name")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        """``PORT: 8080`` in YAML is a number; an environment variable is text."""
        if isinstance(value, Mapping):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in value.items()
            }
        return value

    _check_env = _names_validator("env", ENV_NAME, "{} is not a valid environment variable name")

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, value: list[SecretSpec]) -> list[SecretSpec]:
        return _check_unique_targets(value)

    @field_validator("secret_sets")
    @classmethod
    def _check_sets(cls, value: dict[str, list[SecretSpec]]) -> dict[str, list[SecretSpec]]:
        for name, specs in value.items():
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(f"secret set name {_shown(name)} must be letters, digits and '_'")
            try:
                _check_unique_targets(specs)
            except ValueError as err:
                raise ValueError(f"secret set {name!r}: {err}") from None
        return value


def _item(value: Any) -> Any:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping | ItemSpec):
        return value
    raise ValueError(f"expected an item name or a {{'name': ..., 'secret_set': ...}} object, got {_shown(value)}")


class ItemSpec(_Model):
    """One thing to map over: a name, optionally the secret set its pod gets (``pod_per_item``)."""

    name: str
    secret_set: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not ITEM_NAME.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a valid item name (letters, digits, '_', '.', '-'; at most 63)")
        return value


ItemField = Annotated[ItemSpec, BeforeValidator(_item)]

_PARAM_SCHEMA_KEYS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "items",
    "minItems",
    "maxItems",
)


class ParamSpec(_Model):
    """An Airflow ``Param``: a default plus an optional JSON-schema subset checked on trigger."""

    default: Any = None
    description: str | None = None
    title: str | None = None
    type: str | list[str] | None = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    minLength: int | None = Field(default=None, ge=0)  # JSON-schema spelling
    maxLength: int | None = Field(default=None, ge=0)
    pattern: str | None = None
    format: str | None = None
    items: dict[str, Any] | None = None
    minItems: int | None = Field(default=None, ge=0)
    maxItems: int | None = Field(default=None, ge=0)

    def schema_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _PARAM_SCHEMA_KEYS if getattr(self, key) is not None}


def _param(value: Any) -> Any:
    """``{"default": ...}`` is the full form; anything else is shorthand for the default."""
    return value if isinstance(value, Mapping) and "default" in value else {"default": value}


ParamField = Annotated[ParamSpec, BeforeValidator(_param)]


class DefaultArgs(_Model):
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: Duration = timedelta(minutes=5)
    execution_timeout: Duration | None = None
    owner: str = "dagfleet"


class NotifyTarget(_Model):
    """Where a notification goes: the webhook URL is the Airflow connection's, never the config's."""

    connection: ConnId


class Notify(_Model):
    on_failure: NotifyTarget | None = None
    on_success: NotifyTarget | None = None


class Deadline(_Model):
    """A deadline alert: a run still unfinished ``after`` it was queued calls the connection's webhook."""

    after: Duration  # longer than zero, as every duration
    connection: ConnId


class WorkflowConfig(_Model):
    """One workflow. ``{}`` is valid: every field has a default (see docs/config.md)."""

    description: str | None = None
    schedule: Annotated[str | timedelta | AssetCondition | None, BeforeValidator(_schedule)] = None
    start_date: Annotated[datetime, BeforeValidator(_start_date)] = DEFAULT_START_DATE
    catchup: StrictBool = False  # true or false: "yes" or 1 is an error, not a guess
    max_active_runs: int | None = Field(default=None, ge=1, le=1000)  # None: Airflow's default
    tags: list[str] = Field(default_factory=list, max_length=50)
    default_args: DefaultArgs = Field(default_factory=DefaultArgs)
    params: dict[str, ParamField] = Field(default_factory=dict)
    items: list[ItemField] = Field(default_factory=lambda: [ItemSpec(name=n) for n in DEFAULT_ITEMS])
    max_items: int = Field(default=64, ge=1, le=1024)
    # Scheduling controls (docs/config.md, "Scheduling controls"); None: Airflow's default.
    pool: PoolName | None = None
    pool_slots: int | None = Field(default=None, ge=1, le=10_000)
    priority_weight: int | None = Field(default=None, ge=-100_000, le=100_000)
    weight_rule: Literal["downstream", "upstream", "absolute"] | None = None
    queue: QueueName | None = None
    executor: ExecutorName | None = None
    max_active_tasks: int | None = Field(default=None, ge=1, le=10_000)
    dagrun_timeout: Duration | None = None
    outlets: list[AssetUri] = Field(default_factory=list, max_length=64)
    notify: Notify = Field(default_factory=Notify)
    deadline: Deadline | None = None
    pod: PodSpec | None = None
    # Which base DAG (template) this workflow is a copy of; None: DAGFLEET_DEFAULT_TEMPLATE.
    template: str | None = Field(default=None, pattern=f"^{TEMPLATE_NAME.pattern}$")
    # The template's own settings: any JSON object unless the template's schema says otherwise.
    spec: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > 100:
                raise ValueError(f"tag {_shown(tag)} must be 1 to 100 characters")
        return value

    _check_param_names = _names_validator("params", IDENTIFIER, "param name {} must be letters, digits and '_'")

    def secret_set(self, name: str | None) -> list[SecretSpec]:
        """The specs of a declared secret set (``None``: the default set, or none)."""
        if self.pod is None:
            return []
        chosen = name or self.pod.default_secret_set
        return list(self.pod.secret_sets[chosen]) if chosen else []


# -- cross-field checks (they name the exact field, which a model validator cannot) ----------
Problem = tuple[str, str]  # (field path, message)


def item_problems(config: WorkflowConfig, items: Iterable[ItemSpec], where: str = "items") -> list[Problem]:
    """Duplicate names, too many items, secret sets the config does not declare."""
    problems: list[Problem] = []
    declared = config.pod.secret_sets if config.pod else {}
    seen: set[str] = set()
    count = 0
    for index, item in enumerate(items):
        count += 1
        if item.name in seen:
            problems.append((f"{where}[{index}].name", f"item {item.name!r} is listed twice"))
        seen.add(item.name)
        if item.secret_set is not None and item.secret_set not in declared:
            known = ", ".join(sorted(declared)) or "none are declared"
            problems.append(
                (
                    f"{where}[{index}].secret_set",
                    f"secret set {item.secret_set!r} is not declared in pod.secret_sets ({known})",
                )
            )
    if count > config.max_items:
        problems.append((where, f"{count} items is more than max_items ({config.max_items})"))
    return problems


@dataclass(frozen=True)
class Declared:
    """What the deployment declares (DAGFLEET_POOLS, DAGFLEET_EXECUTORS, DAGFLEET_QUEUES); None: not
    known, not checked."""

    pools: tuple[str, ...] | None = None
    executors: tuple[str, ...] | None = None
    queues: tuple[str, ...] | None = None


DEFAULT_POOL = "default_pool"  # Airflow always has it


def declared_problems(config: WorkflowConfig, declared: Declared) -> list[Problem]:
    """A pool, executor or queue the deployment does not have: its tasks would never run."""
    problems: list[Problem] = []
    pools = declared.pools
    if config.pool is not None and pools is not None and config.pool not in {*pools, DEFAULT_POOL}:
        known = ", ".join([DEFAULT_POOL, *pools])
        problems.append(("pool", f"pool {config.pool!r} is not declared (declared: {known}); declare it or pick one"))
    executors = declared.executors
    if config.executor is not None and executors is not None and config.executor not in executors:
        known = ", ".join(executors)
        problems.append(
            ("executor", f"executor {config.executor!r} is not configured in Airflow (configured: {known})")
        )
    return problems + _queue_problems(config, declared.queues) + _deadline_problems(config, declared.executors)


def _queue_problems(config: WorkflowConfig, queues: tuple[str, ...] | None) -> list[Problem]:
    """A Celery queue no worker listens on: its tasks would stay queued."""
    if config.queue is None or queues is None or config.queue in queues:
        return []
    served = ", ".join(queues)
    return [
        (
            "queue",
            f"queue {config.queue!r} is served by no Celery worker (served: {served}); "
            "add it to a worker group's queues (workers.groups) or pick one",
        )
    ]


def _deadline_problems(config: WorkflowConfig, executors: tuple[str, ...] | None) -> list[Problem]:
    """A deadline on an executor that runs no callbacks (Airflow 3.3.2's KubernetesExecutor): the
    scheduler would hand the missed deadline's callback to an executor that refuses it."""
    if config.deadline is None or not executors:
        return []
    executor = config.executor or executors[0]  # the workflow's, else Airflow's default (the first)
    if not executor.endswith("KubernetesExecutor"):
        return []
    return [
        (
            "deadline",
            f"executor {executor!r} runs no deadline callbacks (LocalExecutor and CeleryExecutor do); "
            "drop deadline or run this workflow on one of those",
        )
    ]


def _cross_problems(config: WorkflowConfig) -> list[Problem]:
    problems = item_problems(config, config.items)
    pod = config.pod
    if pod is not None and pod.default_secret_set is not None and pod.default_secret_set not in pod.secret_sets:
        problems.append(
            ("pod.default_secret_set", f"secret set {pod.default_secret_set!r} is not declared in pod.secret_sets")
        )
    if config.params:
        from dagfleet.fleet.schemas import param_problems  # jsonschema + RE2: only with params
        from dagfleet.fleet.steps import budget

        with budget():
            for name, param in config.params.items():
                problems.extend(param_problems(f"params.{name}", param.schema_dict(), param.default))
    return problems


# -- one-line errors -------------------------------------------------------------------------
def field_path(loc: Iterable[int | str], prefix: str = "") -> str:
    return json_path(loc, prefix) or "(the whole config)"


def _pydantic_problems(err: ValidationError, prefix: str = "") -> list[Problem]:
    problems: list[Problem] = []
    for detail in err.errors(include_url=False):
        kind = detail["type"]
        if kind == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/config.md)"
        elif kind == "missing":
            message = "required field is missing"
        elif kind in {"value_error", "assertion_error"}:
            message = str(detail["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            text = str(detail["msg"])
            message = f"{text[:1].lower()}{text[1:]}, got {_shown(detail.get('input'), 40)}"
        problems.append((field_path(detail["loc"], prefix), message))
    return problems


def format_problems(
    workflow_id: str, problems: list[Problem], where: str = "config", fix: str = "the config API"
) -> str:
    shown = [f"{where} field {clip(path)!a}: {clip(message, 1000)}" for path, message in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    them = "it" if len(problems) == 1 else "them"
    text = clip(" ".join("; ".join(shown).split()), MAX_LINE)  # one line, whatever the messages hold
    return f"workflow {workflow_id!r}: {text}; fix {them} in {fix}"


def config_error(
    workflow_id: str, problems: list[Problem], where: str = "config", fix: str = "the config API"
) -> WorkflowConfigError:
    error = WorkflowConfigError(format_problems(workflow_id, problems, where, fix))
    error.problems = problems  # type: ignore[attr-defined]  # (path, message) pairs for callers
    error.lines = [format_problems(workflow_id, [p], where, fix) for p in problems]  # type: ignore[attr-defined]
    return error


def validate_config(workflow_id: str, raw: Mapping[str, Any], declared: Declared | None = None) -> WorkflowConfig:
    """Validate one workflow's raw config, or raise ``WorkflowConfigError`` (one line, every field);
    with ``declared``, also that its pool and executor exist."""
    if not isinstance(raw, Mapping):
        got = type(raw).__name__
        raise config_error(workflow_id, [("(the whole config)", f"expected a JSON object, got {got}")])
    try:
        config = WorkflowConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise config_error(workflow_id, _pydantic_problems(err)) from None
    problems = _cross_problems(config) + declared_problems(config, declared or Declared())
    if problems:
        raise config_error(workflow_id, problems)
    return config


def validate_items(workflow_id: str, config: WorkflowConfig, raw_items: Any, where: str) -> list[ItemSpec]:
    """Items chosen for one run (``dag_run.conf["items"]`` or a param): the config's rules apply.

    ``where`` names the source in the error, e.g. ``"dag_run.conf.items"``.
    """
    fix = "the run's conf or params"
    try:
        items = TypeAdapter(list[ItemField]).validate_python(raw_items)
    except ValidationError as err:
        raise config_error(workflow_id, _pydantic_problems(err, where), "run", fix) from None
    problems = item_problems(config, items, where)
    if problems:
        raise config_error(workflow_id, problems, "run", fix)
    return items
