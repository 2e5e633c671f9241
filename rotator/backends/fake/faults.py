"""Fault injection in the fake backend (issue 6.2), and the client-side retries that
answer it.

Each service of the fake (kms, storage, firestore, ...) is wrapped in two layers, as a
real call crosses two: the *service* may fail (`FaultInjector`: a transient error at a
rate, or a permanent 403/404 on named resources), and the *client* retries what may be
retried (`rotator.retry.RetryPolicy`, the same policy the gcp backend uses around the
google-cloud clients). So a fault in process travels the path it would in production:
retried when transient, sent once when a repeat could make two of something (left to
the engine's step re-check), reported per object when permanent.

Configured by ROTATOR_FAKE_FAULTS (README, "The fake world"), `;`-separated, e.g.

    rate=0.1;seed=6;codes=RESOURCE_EXHAUSTED,UNAVAILABLE,DEADLINE_EXCEEDED
    deny=gs://bkt/o/03,gs://bkt/o/11;missing=gs://bkt/o/07

rate      probability that a call fails with a transient error (0 to 1)
seed      the random seed (default 0): the same seed faults the same calls (each draw
          depends on the call, not on the order threads make them)
codes     transient errors to draw from (default all three): RESOURCE_EXHAUSTED (HTTP
          429: refused, nothing done), UNAVAILABLE (503, before the call took effect),
          DEADLINE_EXCEEDED (504, *after* it took effect: a lost response)
services  which services fault (default all but inventory): kms, storage, firestore,
          dataflow, run, functions, batch, logs, inventory (Cloud KMS Inventory: with
          rate=1 it cannot be read at all)
methods   which calls fault (default all), by the fake's method name, e.g.
          create_crypto_key_version, rewrite_object
times     stop after this many transient faults (default: no limit); with rate=1, exactly
          that many
deny      resources that answer 403 PERMISSION_DENIED to every change (objects as
          gs://BUCKET/NAME, others by full name); rotator's own calls only, so not the
          rewrites a batch job makes inside Cloud Storage. A service's name (e.g.
          deny=inventory) denies every call of that service, reads too
missing   resources that answer 404 NOT_FOUND to every change, though they exist
backoff   the client's first back-off in seconds, before jitter of as much again
          (default 0.5; 0: retries do not sleep)
"""

from __future__ import annotations

import inspect
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rotator import apierrors as api
from rotator.backends import base
from rotator.errors import BadInput
from rotator.permissions import permission_for
from rotator.retry import RetryPolicy
from rotator.services import REGISTRY, protocols
from rotator.services.calls import CALLS, repeatable
from rotator.services.spec import NO_REQUEST

ENV = "ROTATOR_FAKE_FAULTS"

# The API each service object of the fake implements: only these calls fault.
APIS: dict[str, type] = {
    "kms": base.KmsApi,
    **{service.name: protocols(service)[0] for service in REGISTRY},
    "batch": base.StorageBatchApi,
    "logs": base.LogsApi,
    "inventory": base.InventoryApi,
}
# Faulted only when named (services=inventory): an unreadable Cloud KMS Inventory pins
# every version (README "Cloud KMS Inventory"), so the transient-fault suites keep to
# the calls they were written for.
DEFAULT_SERVICES = frozenset(APIS) - {"inventory"}

# In the API's protocol but answered locally (no request): never faulted. Whether the
# other calls may be repeated blindly is declared with each (Call.repeat, in
# rotator.services.calls and the services' specs): FaultyApi asks `repeatable`.
LOCAL = frozenset(m for api in CALLS.values() for m, call in api.items() if call.permission == NO_REQUEST)

# Reads do not change anything: a deny or missing list is about changes (as a bucket's
# objects can be readable to rotator but not writable).
READS = ("list_", "get_", "search_", "key_failures", "test_iam_permissions")
# What a caller denied changes on a resource still holds (a read-only role).
READ_PERMISSIONS = (".get", ".list", ".getIamPolicy")

TRANSIENT: dict[str, type[api.ApiError]] = {
    "RESOURCE_EXHAUSTED": api.ResourceExhausted,
    "UNAVAILABLE": api.Unavailable,
    "DEADLINE_EXCEEDED": api.DeadlineExceeded,
}
ALIASES = {"429": "RESOURCE_EXHAUSTED", "503": "UNAVAILABLE", "504": "DEADLINE_EXCEEDED"}


def api_methods(protocol: type) -> frozenset[str]:
    # A service's protocol extends its reads protocol (rotator.backends.base): both count.
    own = [k for k in protocol.__mro__ if k.__module__ == protocol.__module__]
    return frozenset(
        n for k in own for n, v in vars(k).items() if callable(v) and not n.startswith("_") and n not in LOCAL
    )


@dataclass(frozen=True)
class FaultSpec:
    rate: float = 0.0
    seed: int = 0
    codes: tuple[str, ...] = tuple(TRANSIENT)
    services: frozenset[str] = DEFAULT_SERVICES
    methods: frozenset[str] | None = None
    times: int | None = None
    deny: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    backoff: float = 0.5

    @property
    def active(self) -> bool:
        return bool(self.rate or self.deny or self.missing)


def parse(text: str, *, source: str = ENV) -> FaultSpec:
    """ROTATOR_FAKE_FAULTS -> FaultSpec; a wrong field is a one-line BadInput (exit 2)."""
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep:
            raise BadInput(f"{source}: {part!r} is not NAME=VALUE")
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        if name == "rate":
            fields["rate"] = _number(source, name, value)
            if not 0 <= fields["rate"] <= 1:
                raise BadInput(f"{source}: rate={value} must be between 0 and 1")
        elif name == "backoff":
            fields["backoff"] = _number(source, name, value)
            if fields["backoff"] < 0:
                raise BadInput(f"{source}: backoff={value} must not be negative")
        elif name in ("seed", "times"):
            try:
                fields[name] = int(value)
            except ValueError:
                raise BadInput(f"{source}: {name}={value!r} is not an integer") from None
            if name == "times" and fields[name] < 0:
                raise BadInput(f"{source}: times={value} must not be negative")
        elif name == "codes":
            codes = tuple(ALIASES.get(c.upper(), c.upper()) for c in items)
            unknown = [c for c in codes if c not in TRANSIENT]
            if unknown or not codes:
                raise BadInput(
                    f"{source}: codes={value!r}: each must be one of "
                    f"{', '.join(TRANSIENT)} (or 429, 503, 504)"
                )
            fields["codes"] = codes
        elif name == "services":
            unknown = [s for s in items if s not in APIS]
            if unknown or not items:
                raise BadInput(f"{source}: services={value!r}: each must be one of {', '.join(APIS)}")
            fields["services"] = frozenset(items)
        elif name == "methods":
            known = set().union(*(api_methods(p) for p in APIS.values()))
            unknown = [m for m in items if m not in known]
            if unknown or not items:
                raise BadInput(
                    f"{source}: methods={value!r}: {', '.join(unknown) or 'none given'} "
                    "is not a call of the fake's APIs"
                )
            fields["methods"] = frozenset(items)
        elif name in ("deny", "missing"):
            fields[name] = frozenset(items)
        else:
            raise BadInput(
                f"{source}: unknown field {name!r} "
                "(rate, seed, codes, services, methods, times, deny, missing, backoff)"
            )
    return FaultSpec(**fields)


def _number(source: str, name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise BadInput(f"{source}: {name}={value!r} is not a number") from None


def from_environment() -> FaultSpec | None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    spec = parse(text)
    return spec if spec.active else None


@dataclass
class Hit:
    service: str
    method: str
    resource: str
    code: str
    after: bool  # raised after the call took effect (a lost response)


@dataclass
class FaultInjector:
    """The service side: decides, per call, whether it fails and how. Each draw depends
    on the seed and on the call alone (service, method, resource, and how many times
    that call was made), not on the order threads reach it: the same seed faults the
    same calls in every run."""

    spec: FaultSpec
    hits: list[Hit] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _transient: int = field(default=0, init=False)
    _seen: Counter[tuple[str, str, str]] = field(default_factory=Counter, init=False, repr=False)

    def before(self, service: str, method: str, resource: str) -> api.ApiError | None:
        """Raise a fault that stops the call, or return one to raise after it ran
        (then `lost` records it, once it is raised)."""
        spec = self.spec
        if service in spec.deny:
            self.record(Hit(service, method, resource, "PERMISSION_DENIED", after=False))
            raise api.PermissionDenied(
                f"permission denied: {method} needs {permission_for(service, method)} (injected by {ENV})",
                resource=resource,
            )
        if not method.startswith(READS):
            if resource in spec.deny:
                self.record(Hit(service, method, resource, "PERMISSION_DENIED", after=False))
                raise api.PermissionDenied(
                    f"permission denied on {resource}: {method} needs {permission_for(service, method)} "
                    f"(injected by {ENV})",
                    resource=resource,
                )
            if resource in spec.missing:
                self.record(Hit(service, method, resource, "NOT_FOUND", after=False))
                raise api.NotFound(f"{method} {resource}: not found (injected by {ENV})", resource=resource)
        if not spec.rate or service not in spec.services or (spec.methods and method not in spec.methods):
            return None
        with self._lock:
            if spec.times is not None and self._transient >= spec.times:
                return None
            self._seen[(service, method, resource)] += 1
            draw = random.Random(
                f"{spec.seed}|{service}|{method}|{resource}|{self._seen[service, method, resource]}"
            )
            if draw.random() >= spec.rate:
                return None
            code = draw.choice(spec.codes)
            self._transient += 1
        error = TRANSIENT[code](f"{method} {resource}: injected {code} ({ENV})", resource=resource)
        if code == "DEADLINE_EXCEEDED":  # the call goes through; its answer is lost
            return error
        self.record(Hit(service, method, resource, code, after=False))
        raise error

    def lost(self, service: str, method: str, error: api.ApiError) -> api.ApiError:
        self.record(Hit(service, method, error.resource or "", error.code, after=True))
        return error

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)


def _resource(service: str, inner: Any, method: str, call: dict[str, Any]) -> str:
    """What the call is about, as deny/missing name it: objects as gs://BUCKET/NAME,
    buckets as gs://BUCKET, everything else by its full resource name."""
    if service == "storage" or (service == "batch" and method == "write_manifest"):
        bucket = call.get("bucket", call.get("name"))
        obj = call.get("name") if "bucket" in call else None
        return f"gs://{bucket}/{obj}" if obj else f"gs://{bucket}" if bucket else "storage"
    if service == "batch" and method == "create_job":
        return str(inner.job_name(call["job_id"]))
    if service == "firestore" and method == "restore_database":
        return f"projects/{inner.project}/databases/{call['database_id']}"
    if service == "inventory":  # about a key (or a project's key list), not the organization
        return str(call.get("key") or f"projects/{call.get('project')}")
    first = next((v for v in call.values() if isinstance(v, str)), None)
    return first or service


class FaultyApi:
    """One service of the fake as a client sees it: the injector in front of the
    service, the retry policy in front of both. Anything that is not an API call
    (the fake's own helpers for tests: upload, delete, advance_to...) passes through."""

    def __init__(self, name: str, inner: Any, injector: FaultInjector, policy: RetryPolicy):
        self._name = name
        self._inner = inner
        self._injector = injector
        self._policy = policy
        self._methods = api_methods(APIS[name]) - LOCAL
        # Set by the rewrite step (as on the gcp backend): told when a bucket throttles.
        self.on_throttle: Callable[[str], None] | None = None

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr not in self._methods:
            return value
        return lambda *args, **kwargs: self._invoke(attr, value, args, kwargs)

    def _invoke(
        self, method: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = dict(inspect.signature(fn).bind(*args, **kwargs).arguments)
        resource = _resource(self._name, self._inner, method, call)

        def attempt() -> Any:
            lost = self._injector.before(self._name, method, resource)
            result = fn(*args, **kwargs)
            if method == "test_iam_permissions" and resource in self._injector.spec.deny:
                result = [p for p in result if p.endswith(READ_PERMISSIONS)]
            if lost is not None:
                raise self._injector.lost(self._name, method, lost)
            return result

        policy = self._policy
        listener = self.on_throttle
        if method == "rewrite_object" and listener is not None:
            bucket = str(call["bucket"])

            def on_retry(error: BaseException, attempt_number: int) -> None:
                self._policy.on_retry(error, attempt_number)
                slow_down = (api.ResourceExhausted, api.Unavailable, api.DeadlineExceeded)  # 429, 5xx
                if isinstance(error, slow_down):
                    listener(bucket)

            policy = replace(policy, on_retry=on_retry)
        preconditioned = call.get("if_generation_match") is not None
        if repeatable(self._name, method, gcp=False, preconditioned=preconditioned):
            return policy.call(attempt)
        return policy.once(attempt)


def wrap(
    backend: Any,
    spec: FaultSpec,
    policy: RetryPolicy | None = None,
    *,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> FaultInjector:
    """Put every service of `backend` behind faults and retries; returns the injector
    (its `hits` say what fired). `policy` (tests) or the spec's backoff, telling
    `on_retry` (the CLI's -v) of each retry."""
    injector = FaultInjector(spec)
    if policy is None:
        policy = RetryPolicy(initial=spec.backoff, maximum=max(spec.backoff, 30.0 if spec.backoff else 0))
        if on_retry is not None:
            policy.on_retry = on_retry
    for name in APIS:
        setattr(backend, name, FaultyApi(name, getattr(backend, name), injector, policy))
    return injector
