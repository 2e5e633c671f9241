"""Faults over the wire (issue 6.2): the gcp backend, through the official clients,
against tests/wire servers that inject Google-shaped errors at a rate.

* transient faults at a rate (FAULT_RATE = 10% of every request of each kind):
  Cloud Storage 429 and 503 (5% each, before the request takes effect) plus 503 after a
  rewrite took effect (a lost response, 5%); gRPC UNAVAILABLE and DEADLINE_EXCEEDED (5%
  each) on every call rotator retries, and RESOURCE_EXHAUSTED on 10% of the Cloud KMS
  calls: each playbook completes in one apply and ends in the same world as a run
  without faults (same seeds: deterministic);
* KMS RESOURCE_EXHAUSTED slows down (exponential backoff), it does not fail the run;
* KMS RESOURCE_EXHAUSTED on CreateCryptoKeyVersion (nothing was made) is retried;
* the calls rotator never retries blindly (CreateCryptoKeyVersion, UpdateService,
  UpdateFunction, RestoreDatabase, SnapshotJob, CreateRepository), faulted once before
  or after they take effect: nothing is made twice, even after the operator's re-run;
  and a fault before they took effect does not fail the apply (re-check, then retry);
* a lost response on a retried KMS change (DEADLINE_EXCEEDED after it took effect):
  the retry must accept that the change happened;
* a concurrent IAM change (ABORTED on SetIamPolicy) is read again and the grant retried;
* permanent 403 and 404 on some objects, through the CLI: each object is named, the
  versions they need stay ENABLED, exit 1 with a one-line summary; once the cause is
  gone, the same apply finishes.

Backends: gcp over the wire.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_server import KMS, STORAGE_BATCH
from grpc_server import Fault as GrpcFault
from harness import serve_world_file, world_advance, world_dump
from helpers import assert_failed, run_cli
from safety_support import (
    FORBIDDEN,
    MISSING,
    assert_failed_objects_kept,
    assert_finished_after_fix,
    normalized,
    violations,
)
from storage_http import Fault
from worlds import APP_2026_KEY as NEW
from worlds import APP_KEY as APP
from worlds import demo_world, destroyable_world, two_bucket_world

from rotator import playbooks
from rotator.backends.fake import open_world
from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.engine import apply_plan
from rotator.errors import Failure, Waiting
from rotator.plan import build_plan, resolve_params

FAULT_RATE = 0.10
SEED = 6


def wire_destroyable_world() -> dict[str, Any]:
    """destroyable_world without Firestore backups: over the wire a backup does not say
    which version it was taken under, so it pins every version of its key (README, "What
    the APIs do not say") and destroy-versions is refused there, rightly."""
    doc = destroyable_world()
    for d in doc.get("firestore", []):
        d["backups"] = []
    return doc


PLAYBOOKS: dict[str, tuple[Any, str | None, dict[str, str]]] = {
    "rotate-key": (demo_world, None, {}),
    "replace-key": (demo_world, NEW, {"firestore": "restore"}),
    "disable-key": (demo_world, None, {}),
    "destroy-versions": (wire_destroyable_world, None, {"versions": "1,2"}),
}

# The calls rotator retries (RetryPolicy.call), by service: these may fail at any rate.
RETRIED = {
    KMS: [
        "GetCryptoKey",
        "ListCryptoKeyVersions",
        "GetCryptoKeyVersion",
        "UpdateCryptoKeyPrimaryVersion",
        "UpdateCryptoKeyVersion",
        "DestroyCryptoKeyVersion",
    ],
    "google.iam.v1.IAMPolicy": ["GetIamPolicy", "SetIamPolicy"],
    "google.firestore.admin.v1.FirestoreAdmin": ["ListDatabases", "GetDatabase", "ListBackups"],
    "google.dataflow.v1beta3.JobsV1Beta3": ["ListJobs", "AggregatedListJobs", "GetJob"],
    "google.cloud.run.v2.Services": ["ListServices", "GetService"],
    "google.cloud.run.v2.Revisions": ["ListRevisions"],
    "google.cloud.functions.v2.FunctionService": ["ListFunctions", "GetFunction"],
    "google.cloud.kms.inventory.v1.KeyTrackingService": ["SearchProtectedResources"],
}
# The calls rotator deliberately does not retry blindly (a repeat could make two of it).
ONCE = {
    "CreateCryptoKeyVersion": "rotate-key",
    "UpdateService": "rotate-key",
    "UpdateFunction": "rotate-key",
    "RestoreDatabase": "replace-key",
    "CreateRepository": "replace-key",
    "SnapshotJob": "disable-key",
}


class Wire:
    """One world file served over the wire, and the gcp backend talking to it."""

    def __init__(self, folder: Path, doc: dict[str, Any], stack: ExitStack, mp: pytest.MonkeyPatch):
        folder.mkdir()
        self.folder = folder
        self.world = folder / "world.yaml"
        self.world.write_text(yaml.safe_dump(copy.deepcopy(doc), sort_keys=False))
        env, self.storage, self.grpc = stack.enter_context(serve_world_file(self.world, folder / "cache"))
        for k, val in env.items():
            mp.setenv(k, val)
        self.retries: list[tuple[str, int]] = []
        self.sleeps: list[tuple[str, float]] = []
        self._last: list[str] = [""]

        def on_retry(e: BaseException, n: int) -> None:
            self.retries.append((type(e).__name__, n))
            self._last[0] = type(e).__name__

        self.gcp = GcpBackend(
            "demo",
            retry=RetryPolicy(sleep=lambda s: self.sleeps.append((self._last[0], s)), on_retry=on_retry),
        )

    def plan(self, playbook: str, new_key: str | None, sets: dict[str, str]) -> dict[str, Any]:
        pb = playbooks.load(playbook)
        return build_plan(self.gcp, pb, resolve_params(pb, APP, new_key, dict(sets)))

    def apply(self, plan: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Apply to the end in one go, but for what takes time (Firestore's re-encryption,
        R21; a batch job): exit 75 is not a failure; the clock moves on as it would."""
        for _ in range(8):
            try:
                return apply_plan(
                    self.gcp, plan, "sha", str(self.folder / "plan.json"), concurrency=4, **options
                )
            except Waiting:
                self.advance(timedelta(hours=6))
        raise AssertionError("still waiting after 48h")

    def advance(self, delta: timedelta) -> None:
        world_advance(self.world, delta)

    def dump(self) -> dict[str, Any]:
        return world_dump(self.world)


@pytest.fixture
def wires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # A window of a few requests with more than a quarter throttled halves the bucket's
    # write rate (AdaptiveRate), in real time; in these small worlds at 10% faults that
    # happens by chance. Not what these tests are about: keep the floor high.
    monkeypatch.setattr("rotator.ratelimit.FLOOR_RPS", 100_000.0)
    with ExitStack() as stack:

        def make(name: str, doc: dict[str, Any]) -> Wire:
            return Wire(tmp_path / name, doc, stack, monkeypatch)

        yield make


_CALM: dict[str, dict[str, Any]] = {}


def calm_world(wires: Any, playbook: str) -> dict[str, Any]:
    """The world after `playbook` with no fault (computed once per module run)."""
    if playbook not in _CALM:
        build, new_key, sets = PLAYBOOKS[playbook]
        calm = wires("calm", build())
        calm.apply(calm.plan(playbook, new_key, sets))
        assert calm.retries == []
        _CALM[playbook] = calm.dump()
    return copy.deepcopy(_CALM[playbook])


def transient_faults(w: Wire, seed: int) -> None:
    half = FAULT_RATE / 2
    w.storage.faults += [
        Fault(status=429, rate=half, seed=seed),
        Fault(status=503, rate=half, seed=seed + 1),
        Fault(op="objects.rewrite", status=503, rate=half, seed=seed + 2, after=True),
    ]
    for service, methods in RETRIED.items():
        for i, method in enumerate(methods):
            s = seed * 1000 + i * 10
            w.grpc.faults += [
                GrpcFault(
                    method=method, service=service, code=grpc.StatusCode.UNAVAILABLE, rate=half, seed=s
                ),
                GrpcFault(
                    method=method,
                    service=service,
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    rate=half,
                    seed=s + 1,
                ),
            ]
            if service == KMS:
                w.grpc.faults.append(
                    GrpcFault(
                        method=method,
                        service=service,
                        code=grpc.StatusCode.RESOURCE_EXHAUSTED,
                        rate=FAULT_RATE,
                        seed=s + 2,
                    )
                )


@pytest.mark.parametrize("playbook", list(PLAYBOOKS))
def test_transient_faults_at_a_rate_are_retried_and_the_apply_ends_in_the_same_world(
    wires: Any, playbook: str
) -> None:
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = normalized(calm_world(wires, playbook))

    stormy = wires("stormy", build())
    transient_faults(stormy, SEED)
    plan = stormy.plan(playbook, new_key, sets)
    result = stormy.apply(plan)
    assert result["complete"]
    final = stormy.dump()
    assert normalized(final) == expected
    assert violations(final, revoked=(APP,) if playbook == "disable-key" else ()) == []
    assert stormy.storage.errors == []
    storage_faults = sum(f.hits for f in stormy.storage.faults)
    grpc_faults = len(stormy.grpc.fault_hits)
    assert storage_faults + grpc_faults > 0, "no fault fired: the rate is not exercised"
    assert stormy.retries, "faults fired but nothing was retried"


def test_kms_resource_exhausted_slows_down_and_does_not_fail_the_run(wires: Any) -> None:
    w = wires("quota", demo_world())
    w.grpc.faults.append(
        GrpcFault(method="GetCryptoKey", service=KMS, code=grpc.StatusCode.RESOURCE_EXHAUSTED, times=3)
    )
    for i, method in enumerate(RETRIED[KMS]):
        w.grpc.faults.append(
            GrpcFault(method=method, service=KMS, code=grpc.StatusCode.RESOURCE_EXHAUSTED, rate=0.3, seed=i)
        )
    result = w.apply(w.plan("rotate-key", None, {}))
    assert result["complete"]
    exhausted = [s for name, s in w.sleeps if name == "ResourceExhausted"]
    assert len(exhausted) >= 3
    assert all(s > 0 for s in exhausted), exhausted
    # Three in a row on one call back off exponentially (0.5 s, 1 s, 2 s, plus jitter).
    first = exhausted[:3]
    assert first[0] < first[1] < first[2], first
    assert w.dump()["kms"][1]["versions"] == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}


def test_kms_resource_exhausted_on_create_version_is_retried(wires: Any) -> None:
    """Over quota (R6), KMS refuses CreateCryptoKeyVersion before doing anything: waiting
    and trying again cannot make two versions, and the run must not fail for it."""
    w = wires("quota", demo_world())
    w.grpc.faults.append(
        GrpcFault(method="CreateCryptoKeyVersion", code=grpc.StatusCode.RESOURCE_EXHAUSTED, times=2)
    )
    assert w.apply(w.plan("rotate-key", None, {}))["complete"]
    assert [s for name, s in w.sleeps if name == "ResourceExhausted"], "no back-off"
    assert w.dump()["kms"][1]["versions"] == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}


def normalized_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """Snapshots counted per job, not named (Dataflow names them, not rotator)."""
    doc = copy.deepcopy(doc)
    for j in doc.get("dataflow", []):
        j["snapshots"] = len(j.get("snapshots", []))
    return doc


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("method", list(ONCE))
def test_a_fault_on_a_call_rotator_does_not_retry_blindly_never_makes_it_twice(
    wires: Any, method: str, when: str
) -> None:
    """UNAVAILABLE once on a non-idempotent call, before it reached the service or after
    it took effect (a lost response): whether the apply goes on or the operator runs it
    again, there is no second version, revision, database, repository or snapshot."""
    playbook = ONCE[method]
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = calm_world(wires, playbook)
    w = wires("faulted", build())
    plan = w.plan(playbook, new_key, sets)
    w.grpc.faults.append(GrpcFault(method=method, code=grpc.StatusCode.UNAVAILABLE, times=1, when=when))
    try:
        w.apply(plan)
    except Failure:  # then the operator runs apply again, as the message says
        w.apply(plan)
    assert len(w.grpc.fault_hits) == 1, f"{method} was not called"
    got, want = normalized_ids(w.dump()), normalized_ids(expected)
    assert got.get("dataflow") == want.get("dataflow"), json.dumps(
        [got.get("dataflow"), want.get("dataflow")]
    )
    assert got == want


@pytest.mark.parametrize("method", list(ONCE))
def test_a_transient_fault_on_a_call_rotator_does_not_retry_blindly_does_not_fail_the_apply(
    wires: Any, method: str
) -> None:
    """Issue 6.2: UNAVAILABLE "must be retried and the apply must complete". For a call
    that may not be repeated blindly, that means: read the world again (the same re-check
    a resumed apply makes: versions created since the step started, the service's latest
    revision, the function's version, the restored database, the repository, the job's
    snapshots) and call again only if it did not happen. Here the call never reached the
    service."""
    playbook = ONCE[method]
    build, new_key, sets = PLAYBOOKS[playbook]
    w = wires("faulted", build())
    plan = w.plan(playbook, new_key, sets)
    w.grpc.faults.append(GrpcFault(method=method, code=grpc.StatusCode.UNAVAILABLE, times=1))
    try:
        w.apply(plan)
    except Failure as e:
        pytest.fail(f"one UNAVAILABLE on {method} failed the apply: {e.line()}")
    assert w.dump() == calm_world(wires, playbook)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_fault_on_create_batch_job_never_makes_two_jobs(wires: Any, when: str) -> None:
    """--engine batch: CreateJob answered UNAVAILABLE before it reached the service, or
    after the job was made (a lost answer; also what a kill before the journal line
    leaves): the step finds its job by its plan-derived id, never starts a second over
    the bucket, and the apply completes."""
    w = wires("batch", demo_world())
    plan = w.plan("rotate-key", None, {})
    w.grpc.faults.append(
        GrpcFault(
            method="CreateJob", service=STORAGE_BATCH, code=grpc.StatusCode.UNAVAILABLE, times=1, when=when
        )
    )
    assert w.apply(plan, engine="batch", manifest_bucket="demo-logs")["complete"]
    assert len(w.grpc.fault_hits) == 1
    final = w.dump()
    jobs = final["storage_batch"]
    assert jobs and len(jobs) == len({j["bucket"] for j in jobs}), jobs
    assert violations(final) == []


def test_a_concurrent_iam_change_is_read_again_and_the_grant_retried(wires: Any) -> None:
    """SetIamPolicy with a stale etag answers ABORTED (gRPC): the grant step re-reads the
    policy and tries again (steps/iam.py), whatever the backend."""
    build, new_key, sets = PLAYBOOKS["replace-key"]
    expected = calm_world(wires, "replace-key")
    w = wires("raced", build())
    plan = w.plan("replace-key", new_key, sets)
    w.grpc.faults.append(GrpcFault(method="SetIamPolicy", code=grpc.StatusCode.ABORTED, times=1))
    assert w.apply(plan)["complete"]
    assert w.dump() == expected


@pytest.mark.parametrize(
    ("method", "playbook"),
    [
        ("UpdateCryptoKeyVersion", "rotate-key"),
        ("UpdateCryptoKeyPrimaryVersion", "rotate-key"),
        ("DestroyCryptoKeyVersion", "destroy-versions"),
        ("SetIamPolicy", "replace-key"),
    ],
)
def test_a_lost_response_on_a_retried_kms_change_is_accepted(wires: Any, method: str, playbook: str) -> None:
    """DEADLINE_EXCEEDED after the change took effect: the retry finds it done (e.g. the
    version already DESTROY_SCHEDULED, the policy's etag moved) and the apply goes on."""
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = calm_world(wires, playbook)

    w = wires("lost", build())
    plan = w.plan(playbook, new_key, sets)
    w.grpc.faults.append(
        GrpcFault(method=method, code=grpc.StatusCode.DEADLINE_EXCEEDED, times=1, when="after")
    )
    assert w.apply(plan)["complete"]
    assert len(w.grpc.fault_hits) == 1
    assert w.dump() == expected


# -- permanent faults, through the CLI --------------------------------------------------------------


def serve_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: ExitStack) -> tuple[Path, Any]:
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(two_bucket_world(), sort_keys=False))
    env, storage, _grpc = stack.enter_context(serve_world_file(world, tmp_path / "cache"))
    for k, val in env.items():
        monkeypatch.setenv(k, val)
    r = run_cli(["plan", "rotate-key", "--key", APP, "--out", "plan.json"], cwd=tmp_path)
    assert r.code == 0, r
    return world, storage


def failed_objects_kept(tmp_path: Path, world: Path, failed: list[str]) -> None:
    status = run_cli(["--output", "json", "status", "plan.json"], cwd=tmp_path)
    assert_failed_objects_kept(open_world(str(world)).dump(), json.loads(status.stdout), failed)


def finish_after_fix(tmp_path: Path, world: Path, storage: Any) -> None:
    storage.faults.clear()
    r = run_cli(["apply", "plan.json", "--yes"], cwd=tmp_path)
    assert r.code == 0, r
    assert_finished_after_fix(open_world(str(world)).dump())


def test_permanent_403_on_some_objects_is_reported_per_object_and_keeps_their_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        world, storage = serve_small(tmp_path, monkeypatch, stack)
        for name in FORBIDDEN:
            storage.faults.append(Fault(op="objects.rewrite", bucket="bkt", object=name, status=403))
        r = run_cli(["apply", "plan.json", "--yes"], cwd=tmp_path)
        # exit 1, and one summary line that says how many
        line = assert_failed(r, 1, "error", f"{len(FORBIDDEN)} object(s)")
        # every object named, each on a line of its own with the permission it lacks (not
        # only the first one, as an example in the summary)
        for name in FORBIDDEN:
            own = [ln for ln in r.stderr.splitlines() if f"gs://bkt/{name}" in ln and ln != line]
            assert own and "storage.objects" in own[0], (name, r.stderr)
        failed_objects_kept(tmp_path, world, FORBIDDEN)
        finish_after_fix(tmp_path, world, storage)


def test_permanent_404_on_rewrite_of_an_object_that_is_still_there_is_reported_and_keeps_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 404 on the rewrite, while the object is still listed and readable: not "deleted
    meanwhile, nothing to protect" but a failure, named, with exit 1 (issue 6.2)."""
    with ExitStack() as stack:
        world, storage = serve_small(tmp_path, monkeypatch, stack)
        for name in MISSING:
            storage.faults.append(Fault(op="objects.rewrite", bucket="bkt", object=name, status=404))
        r = run_cli(["apply", "plan.json", "--yes"], cwd=tmp_path)
        line = assert_failed(r, 1, "error", f"{len(MISSING)} object(s)")
        for name in MISSING:
            assert any(f"gs://bkt/{name}" in ln for ln in r.stderr.splitlines() if ln != line), r.stderr
        failed_objects_kept(tmp_path, world, MISSING)
        finish_after_fix(tmp_path, world, storage)
