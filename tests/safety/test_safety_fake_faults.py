"""Faults in the fake, in process (issue 6.2); tests/wire/test_safety_faults.py does the
same over the wire, through the gcp backend and the official clients.

The fake injects them at its API boundary (rotator/backends/fake/faults.py), behind the
same client-side RetryPolicy the gcp backend uses:

* transient faults at FAULT_RATE (10% of every call of every service: RESOURCE_EXHAUSTED,
  UNAVAILABLE before the call took effect, DEADLINE_EXCEEDED after it did): each playbook
  completes and ends in the same world as a run without faults;
* KMS RESOURCE_EXHAUSTED slows down (exponential backoff), it does not fail the run; a
  throttled bucket halves its write rate;
* the calls rotator never repeats blindly (a second version, revision, database,
  repository, snapshot or batch job), faulted before or after they take effect: nothing
  is made twice, and the apply still completes (the step re-checks, then calls again);
* a lost response on a retried change is accepted by the retry;
* permanent 403 and 404 on some objects, through the CLI (ROTATOR_FAKE_FAULTS): each
  object named, the versions they need kept ENABLED, exit 1 with a summary; once the
  cause is gone, the same apply finishes;
* ROTATOR_FAKE_FAULTS itself is checked: a wrong field is exit 2 and nothing is made.

Backends: fake.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import assert_failed, run_cli
from safety_support import (
    FORBIDDEN,
    MISSING,
    assert_failed_objects_kept,
    assert_finished_after_fix,
    normalized,
    violations,
)
from worlds import APP_2026_KEY as NEW
from worlds import APP_KEY as APP
from worlds import demo_world, destroyable_world, two_bucket_world

from rotator import playbooks, ratelimit, rewrites
from rotator.backends.fake import FakeBackend, open_world
from rotator.backends.fake.faults import FaultSpec, parse
from rotator.engine import apply_plan
from rotator.errors import BadInput, Failure, Waiting
from rotator.plan import build_plan, resolve_params
from rotator.retry import RetryPolicy

FAULT_RATE = 0.10
SEED = 6

PLAYBOOKS: dict[str, tuple[Any, str | None, dict[str, str]]] = {
    "rotate-key": (demo_world, None, {}),
    "replace-key": (demo_world, NEW, {"firestore": "restore"}),
    "disable-key": (demo_world, None, {}),
    "destroy-versions": (destroyable_world, None, {"versions": "1,2"}),
}


@pytest.fixture(autouse=True)
def unthrottled_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    # A window of a few writes with more than a quarter throttled halves the bucket's
    # write rate in real time; in these small worlds at 10% faults that happens by
    # chance. Keep the floor high so these tests do not sleep.
    monkeypatch.setattr(ratelimit, "FLOOR_RPS", 100_000.0)


class Faulted:
    """A world in process, its services behind faults and a recording retry policy."""

    def __init__(self, tmp_path: Path, doc: dict[str, Any], spec: FaultSpec | None):
        tmp_path.mkdir(exist_ok=True)
        self.folder = tmp_path
        self.retries: list[tuple[str, int]] = []
        self.sleeps: list[tuple[str, float]] = []
        last = [""]

        def on_retry(e: BaseException, n: int) -> None:
            self.retries.append((type(e).__name__, n))
            last[0] = type(e).__name__

        policy = RetryPolicy(sleep=lambda s: self.sleeps.append((last[0], s)), on_retry=on_retry)
        self.backend = FakeBackend.from_dict(copy.deepcopy(doc), faults=spec, retry=policy)

    @property
    def hits(self) -> list[Any]:
        return self.backend.faults.hits if self.backend.faults else []

    def plan(self, playbook: str, new_key: str | None, sets: dict[str, str]) -> dict[str, Any]:
        pb = playbooks.load(playbook)
        return build_plan(self.backend, pb, resolve_params(pb, APP, new_key, dict(sets)))

    def apply(self, plan: dict[str, Any], **options: Any) -> dict[str, Any]:
        """To the end in one go, but for what takes time (Firestore's re-encryption, R21;
        a batch job): exit 75 is not a failure; the clock moves on as it would."""
        for _ in range(8):
            try:
                return apply_plan(
                    self.backend, plan, "sha", str(self.folder / "plan.json"), concurrency=4, **options
                )
            except Waiting:
                self.backend.advance(timedelta(hours=6))
        raise AssertionError("still waiting after 48h")

    def dump(self) -> dict[str, Any]:
        return self.backend.dump()


_CALM: dict[str, dict[str, Any]] = {}


def calm_world(tmp_path: Path, playbook: str) -> dict[str, Any]:
    """The world after `playbook` with no fault (computed once per module run)."""
    if playbook not in _CALM:
        build, new_key, sets = PLAYBOOKS[playbook]
        folder = tmp_path / "calm"
        folder.mkdir(exist_ok=True)
        calm = Faulted(folder, build(), None)
        calm.apply(calm.plan(playbook, new_key, sets))
        assert calm.retries == [] and calm.backend.faults is None
        _CALM[playbook] = calm.dump()
    return copy.deepcopy(_CALM[playbook])


def normalized_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """Snapshots counted per job, not named (Dataflow names them, not rotator)."""
    doc = copy.deepcopy(doc)
    for j in doc.get("dataflow", []):
        j["snapshots"] = len(j.get("snapshots", []))
    return doc


# -- transient faults at a rate ----------------------------------------------------------------


@pytest.mark.parametrize("playbook", list(PLAYBOOKS))
def test_transient_faults_at_a_rate_are_retried_and_the_apply_ends_in_the_same_world(
    tmp_path: Path, playbook: str
) -> None:
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = calm_world(tmp_path, playbook)
    stormy = Faulted(tmp_path, build(), FaultSpec(rate=FAULT_RATE, seed=SEED))
    result = stormy.apply(stormy.plan(playbook, new_key, sets))
    assert result["complete"]
    final = stormy.dump()
    assert normalized(final) == normalized(expected)
    assert normalized_ids(final).get("dataflow") == normalized_ids(expected).get("dataflow")
    assert violations(final, revoked=(APP,) if playbook == "disable-key" else ()) == []
    assert stormy.hits, "no fault fired: the rate is not exercised"
    assert stormy.retries, "faults fired but nothing was retried"
    assert all(s > 0 for _name, s in stormy.sleeps), "a retry without backing off"


def test_the_fault_rate_is_the_configured_one(tmp_path: Path) -> None:
    """Over the ~400 calls of a rotate-key, 10% fault within sampling error, of all three
    kinds: the rate is applied per call, to every service."""
    w = Faulted(tmp_path, demo_world(), FaultSpec(rate=FAULT_RATE, seed=SEED))
    calls = {"n": 0}
    inject = w.backend.faults
    assert inject is not None
    before = inject.before

    def counting(*args: Any) -> Any:
        calls["n"] += 1
        return before(*args)

    inject.before = counting  # type: ignore[method-assign]
    w.apply(w.plan("rotate-key", None, {}))
    assert calls["n"] > 300
    observed = len(w.hits) / calls["n"]
    assert 0.07 < observed < 0.13, (len(w.hits), calls["n"])
    assert {h.code for h in w.hits} == {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert {h.service for h in w.hits} >= {"kms", "storage"}


def test_kms_resource_exhausted_slows_down_and_does_not_fail_the_run(tmp_path: Path) -> None:
    spec = FaultSpec(rate=0.3, seed=SEED, codes=("RESOURCE_EXHAUSTED",), services=frozenset({"kms"}))
    w = Faulted(tmp_path, demo_world(), spec)
    assert w.apply(w.plan("rotate-key", None, {}))["complete"]
    exhausted = [s for name, s in w.sleeps if name == "ResourceExhausted"]
    assert len(exhausted) >= 3 and all(s > 0 for s in exhausted), exhausted
    # Exponential: the first wait is 0.5-1 s (0.5 s and up to as much jitter), the second
    # of one call 1-1.5 s.
    first = [s for (_name, n), (_e, s) in zip(w.retries, w.sleeps, strict=True) if n == 1]
    second = [s for (_name, n), (_e, s) in zip(w.retries, w.sleeps, strict=True) if n == 2]
    assert second, "no call was refused twice in a row; pick another seed"
    assert all(0.5 <= s <= 1.0 for s in first), first
    assert all(1.0 <= s <= 1.5 for s in second), second
    assert w.dump()["kms"][1]["versions"] == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}


def test_kms_resource_exhausted_on_create_version_is_retried(tmp_path: Path) -> None:
    """Over quota (R6), KMS refuses CreateCryptoKeyVersion before doing anything: waiting
    and trying again cannot make two versions, and the run must not fail for it."""
    spec = FaultSpec(
        rate=1, times=2, codes=("RESOURCE_EXHAUSTED",), methods=frozenset({"create_crypto_key_version"})
    )
    w = Faulted(tmp_path, demo_world(), spec)
    assert w.apply(w.plan("rotate-key", None, {}))["complete"]
    assert len(w.hits) == 2
    assert [name for name, _s in w.sleeps] == ["ResourceExhausted", "ResourceExhausted"]
    assert w.dump()["kms"][1]["versions"] == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}


def test_a_throttled_rewrite_is_retried_without_slowing_its_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One 429 is the service's noise: the write is retried with backoff and the
    bucket is told, but its rate comes down only when a window's share of throttled
    answers passes THROTTLED_SHARE (Cloud Storage's request-rate guidance)."""
    throttled: list[float] = []
    original = ratelimit.AdaptiveRate.on_throttled

    def record(self: Any) -> None:
        original(self)
        throttled.append(self.rate)

    monkeypatch.setattr(ratelimit.AdaptiveRate, "on_throttled", record)
    spec = FaultSpec(rate=1, times=1, codes=("RESOURCE_EXHAUSTED",), methods=frozenset({"rewrite_object"}))
    w = Faulted(tmp_path, demo_world(), spec)
    assert w.apply(w.plan("rotate-key", None, {}))["complete"]
    assert len(w.hits) == 1
    assert throttled == [ratelimit.GCS_START_RPS], "the bucket was not told, or one 429 slowed it down"
    assert normalized(w.dump()) == normalized(calm_world(tmp_path, "rotate-key"))


def test_the_retry_of_a_throttled_rewrite_waits_for_its_bucket_s_rate_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a storm the retries must slow down with the new writes: each one takes a
    token from the bucket's rate, so writes sent = objects + throttled answers."""
    sent: list[int] = []
    original = ratelimit.AdaptiveRate.acquire

    def count(self: Any) -> float:
        sent.append(1)
        return original(self)

    monkeypatch.setattr(ratelimit.AdaptiveRate, "acquire", count)
    outcomes: list[str] = []
    one = rewrites.rewrite_one

    def record(*args: Any, **kwargs: Any) -> tuple[str, int]:
        outcome = one(*args, **kwargs)
        outcomes.append(outcome[0])
        return outcome

    monkeypatch.setattr(rewrites, "rewrite_one", record)
    spec = FaultSpec(rate=1, times=3, codes=("UNAVAILABLE",), methods=frozenset({"rewrite_object"}))
    w = Faulted(tmp_path, demo_world(), spec)
    assert w.apply(w.plan("rotate-key", None, {}))["complete"] and len(w.hits) == 3
    # A pinned object (held, retained) is never written; every other one once, plus
    # one token for each throttled retry.
    assert "rewritten" in outcomes
    assert len(sent) == sum(1 for o in outcomes if o == "rewritten") + 3


# -- calls rotator does not repeat blindly ---------------------------------------------------------

ONCE = {
    "create_crypto_key_version": "rotate-key",
    "update_service": "rotate-key",
    "redeploy_function": "rotate-key",
    "restore_database": "replace-key",
    "create_repository": "replace-key",
    "snapshot_job": "disable-key",
}


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED"])
@pytest.mark.parametrize("method", list(ONCE))
def test_a_fault_on_a_call_rotator_does_not_repeat_blindly_never_makes_it_twice(
    tmp_path: Path, method: str, code: str
) -> None:
    """UNAVAILABLE (the call never reached the service) or DEADLINE_EXCEEDED (it took
    effect, the answer was lost) once on a non-idempotent call: the step looks again at
    what happened and goes on; there is no second version, revision, database,
    repository or snapshot, and the apply completes."""
    playbook = ONCE[method]
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = calm_world(tmp_path, playbook)
    w = Faulted(tmp_path, build(), FaultSpec(rate=1, times=1, codes=(code,), methods=frozenset({method})))
    plan = w.plan(playbook, new_key, sets)
    try:
        assert w.apply(plan)["complete"]
    except Failure as e:
        pytest.fail(f"one {code} on {method} failed the apply: {e.line()}")
    assert [(h.method, h.code) for h in w.hits] == [(method, code)]
    assert normalized_ids(w.dump()) == normalized_ids(expected)


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED"])
@pytest.mark.parametrize("method", ["create_job", "write_manifest"])
def test_a_fault_on_a_batch_job_create_never_makes_two_jobs(tmp_path: Path, method: str, code: str) -> None:
    """Cloud Storage batch operations (--engine batch): the job is created once per
    bucket, over every object to move, whether the manifest's upload or the create
    never arrived or its answer was lost."""
    batch = {"engine": "batch", "manifest_bucket": "demo-logs"}
    calm = Faulted(tmp_path / "calm", demo_world(), None)
    calm.apply(calm.plan("rotate-key", None, {}), **batch)
    expected = calm.dump()
    spec = FaultSpec(rate=1, times=1, codes=(code,), methods=frozenset({method}))
    w = Faulted(tmp_path, demo_world(), spec)
    assert w.apply(w.plan("rotate-key", None, {}), **batch)["complete"]
    assert [(h.method, h.code) for h in w.hits] == [(method, code)]
    jobs = w.dump()["storage_batch"]
    assert len(jobs) == len(expected["storage_batch"]) == len({j["bucket"] for j in jobs})
    assert [j["total"] for j in jobs] == [j["total"] for j in expected["storage_batch"]]
    assert without_manifests(w.dump()) == without_manifests(expected)


def without_manifests(doc: dict[str, Any]) -> dict[str, Any]:
    """A re-run step writes its manifest again (same rows; rotator's own file, a second
    generation): not a difference in the data rotator protects."""
    doc = normalized(doc)
    for b in doc["storage"]:
        b["objects"] = [o for o in b.get("objects", []) if not o["name"].startswith("rotator/")]
    return doc


@pytest.mark.parametrize(
    ("method", "playbook"),
    [
        ("update_crypto_key_version", "rotate-key"),
        ("update_crypto_key_primary_version", "rotate-key"),
        ("destroy_crypto_key_version", "destroy-versions"),
        ("set_iam_policy", "replace-key"),
        ("patch_bucket_default_kms_key", "replace-key"),
        ("rewrite_object", "rotate-key"),
    ],
)
def test_a_lost_response_on_a_retried_change_is_accepted(tmp_path: Path, method: str, playbook: str) -> None:
    """DEADLINE_EXCEEDED after the change took effect: the retry finds it done (the
    version already DESTROY_SCHEDULED, the policy's etag moved, the object already at a
    new generation) and the apply goes on to the same world."""
    build, new_key, sets = PLAYBOOKS[playbook]
    expected = calm_world(tmp_path, playbook)
    spec = FaultSpec(rate=1, times=1, codes=("DEADLINE_EXCEEDED",), methods=frozenset({method}))
    w = Faulted(tmp_path, build(), spec)
    assert w.apply(w.plan(playbook, new_key, sets))["complete"]
    assert [h.method for h in w.hits] == [method]
    assert normalized(w.dump()) == normalized(expected)


# -- permanent faults, through the CLI ---------------------------------------------------------------


def planned_small(tmp_path: Path) -> Path:
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(two_bucket_world(), sort_keys=False))
    r = run_cli(
        ["--world", str(world), "plan", "rotate-key", "--key", APP, "--out", "plan.json"], cwd=tmp_path
    )
    assert r.code == 0, r
    return world


def apply_small(tmp_path: Path, world: Path) -> Any:
    return run_cli(["--world", str(world), "apply", "plan.json", "--yes"], cwd=tmp_path)


def failed_objects_kept(tmp_path: Path, world: Path, failed: list[str]) -> None:
    status = run_cli(["--world", str(world), "--output", "json", "status", "plan.json"], cwd=tmp_path)
    assert_failed_objects_kept(open_world(str(world)).dump(), json.loads(status.stdout), failed)


def finish_after_fix(tmp_path: Path, world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTATOR_FAKE_FAULTS")
    r = apply_small(tmp_path, world)
    assert r.code == 0, r
    assert_finished_after_fix(open_world(str(world)).dump())


def test_permanent_403_on_some_objects_is_reported_per_object_and_keeps_their_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = planned_small(tmp_path)
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "deny=" + ",".join(f"gs://bkt/{n}" for n in FORBIDDEN))
    r = apply_small(tmp_path, world)
    line = assert_failed(r, 1, "error", f"{len(FORBIDDEN)} object(s)")
    for name in FORBIDDEN:  # each object on a line of its own, with the permission it lacks
        own = [ln for ln in r.stderr.splitlines() if f"gs://bkt/{name}" in ln and ln != line]
        assert own and "storage.objects" in own[0], (name, r.stderr)
    failed_objects_kept(tmp_path, world, FORBIDDEN)
    finish_after_fix(tmp_path, world, monkeypatch)


def test_permanent_404_on_rewrite_of_an_object_that_is_still_there_is_reported_and_keeps_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 404 on the rewrite while the object is still listed and readable: not "deleted
    meanwhile, nothing to protect" but a failure, named, with exit 1."""
    world = planned_small(tmp_path)
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "missing=" + ",".join(f"gs://bkt/{n}" for n in MISSING))
    r = apply_small(tmp_path, world)
    line = assert_failed(r, 1, "error", f"{len(MISSING)} object(s)")
    for name in MISSING:
        assert any(f"gs://bkt/{name}" in ln for ln in r.stderr.splitlines() if ln != line), r.stderr
    failed_objects_kept(tmp_path, world, MISSING)
    finish_after_fix(tmp_path, world, monkeypatch)


def test_transient_faults_through_the_cli_complete_with_the_same_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calm_dir, stormy_dir = tmp_path / "calm", tmp_path / "stormy"
    worlds, retried = [], []
    for folder, faults in ((calm_dir, ""), (stormy_dir, f"rate={FAULT_RATE};seed={SEED};backoff=0")):
        folder.mkdir()
        monkeypatch.setenv("ROTATOR_FAKE_FAULTS", faults)
        world = planned_small(folder)
        r = run_cli(["-v", "--world", str(world), "apply", "plan.json", "--yes"], cwd=folder)
        assert r.code == 0, r
        worlds.append(open_world(str(world)).dump())
        retried.append([ln for ln in r.stderr.splitlines() if ln.startswith("retrying after attempt")])
    monkeypatch.delenv("ROTATOR_FAKE_FAULTS")
    assert worlds[0] == worlds[1]
    assert retried[0] == [] and retried[1], "no fault fired through ROTATOR_FAKE_FAULTS"
    assert "(ROTATOR_FAKE_FAULTS)" in retried[1][0]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("rate=lots", "rate='lots' is not a number"),
        ("rate=1.5", "rate=1.5 must be between 0 and 1"),
        ("seed=x", "seed='x' is not an integer"),
        ("codes=TEAPOT", "codes='TEAPOT'"),
        ("services=bigtable", "services='bigtable'"),
        ("methods=drop_table", "drop_table is not a call"),
        ("times=-1", "times=-1 must not be negative"),
        ("backoff=-2", "backoff=-2 must not be negative"),
        ("colour=red", "unknown field 'colour'"),
        ("rate", "'rate' is not NAME=VALUE"),
    ],
)
def test_a_wrong_fault_spec_is_exit_2_and_makes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, needle: str
) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(two_bucket_world(), sort_keys=False))
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", spec)
    r = run_cli(["--world", str(world), "inventory", APP], cwd=tmp_path)
    assert_failed(r, 2, "error", "ROTATOR_FAKE_FAULTS", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world.yaml"]


def test_parse_reads_every_field() -> None:
    spec = parse(
        " rate=0.25; seed=9; codes=429,504; services=kms,storage; methods=rewrite_object; times=3;"
        " deny=gs://b/a,gs://b/c; missing=gs://b/d; backoff=0 "
    )
    assert spec == FaultSpec(
        rate=0.25,
        seed=9,
        codes=("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"),
        services=frozenset({"kms", "storage"}),
        methods=frozenset({"rewrite_object"}),
        times=3,
        deny=frozenset({"gs://b/a", "gs://b/c"}),
        missing=frozenset({"gs://b/d"}),
        backoff=0.0,
    )
    with pytest.raises(BadInput):
        parse("rate=2")


@pytest.mark.parametrize("method", ["restore_crypto_key_version", "update_crypto_key_version"])
def test_a_lost_answer_during_rollback_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """rollback restores DESTROY_SCHEDULED versions and enables them again: a lost answer
    on either change (the retry finds it done) neither fails the rollback nor leaves a
    version in its destroy window."""
    from worlds import APP_KEY, make_world, write_world

    doc = make_world()
    doc["storage"][0]["objects"] = []
    w = write_world(tmp_path / "world.yaml", doc)
    for name, args in (
        ("rot.json", ["rotate-key", "--key", APP_KEY]),
        ("des.json", ["destroy-versions", "--key", APP_KEY, "--set", "versions=1,2"]),
    ):
        assert run_cli(["--world", str(w), "plan", *args, "--out", str(tmp_path / name)]).code == 0
        assert run_cli(["--world", str(w), "apply", str(tmp_path / name), "--yes"]).code == 0
    plan = ["--world", str(w), "plan", "rollback", "--set", f"plan={tmp_path / 'des.json'}"]
    assert run_cli([*plan, "--out", str(tmp_path / "r.json")]).code == 0
    want = {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    if method == "update_crypto_key_version":  # then roll back the rotation's disables
        assert run_cli(["--world", str(w), "apply", str(tmp_path / "r.json"), "--yes"]).code == 0
        plan = ["--world", str(w), "plan", "rollback", "--set", f"plan={tmp_path / 'rot.json'}"]
        assert run_cli([*plan, "--out", str(tmp_path / "r.json")]).code == 0
        want = {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}
    monkeypatch.setenv(
        "ROTATOR_FAKE_FAULTS", f"rate=1;times=1;codes=DEADLINE_EXCEEDED;methods={method};backoff=0"
    )
    r = run_cli(["-v", "--world", str(w), "apply", str(tmp_path / "r.json"), "--yes"])
    assert r.code == 0, r
    assert any("DEADLINE_EXCEEDED" in ln for ln in r.stderr.splitlines()), "the fault did not fire"
    monkeypatch.delenv("ROTATOR_FAKE_FAULTS")
    states = {v.number: v.state for v in open_world(str(w)).kms.list_crypto_key_versions(APP_KEY)}
    assert states == want
