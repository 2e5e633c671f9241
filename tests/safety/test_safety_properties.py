"""Invariants, property-based (issue 6.4): random worlds across the five services and
random playbooks, planned and applied in process on the fake.

Worlds (hypothesis): a key `app` with 1-4 versions (ENABLED, DISABLED or
DESTROY_SCHEDULED, an ENABLED primary) and a same-region replacement key; 0-3 buckets
(default key app / the new key / none, versioned or not, soft delete on or off, a bucket
retention policy locked or not) of 0-5 objects under random versions, with holds,
object retention (past or future), noncurrent and soft-deleted generations; a Firestore
database on app with 0-2 backups; 0-2 Dataflow jobs (streaming or batch, running or
done); a Cloud Run service with 1-3 revisions and a traffic split; a function. Every
world starts consistent: what needs a version now finds it ENABLED, what needs it some
day finds it not destroyed.

Playbooks: rotate-key, replace-key (to the same-region key, with or without
`firestore=restore`), destroy-versions of a random subset of versions, disable-key.
Most runs go through the fake's fault layer (rotator/backends/fake/faults.py) at 5%
or 20% of every call, with a random seed. Plan, then apply to the end (exit 75: the
clock moves 7 hours and apply runs again); a refusal (3), a stale plan (4) or a failure
(1) are acceptable outcomes. Then:

* nothing depends on a version that is not usable as it needs it (safety_support.
  violations: live and noncurrent generations, Firestore active versions, running jobs,
  serving revisions and functions need it ENABLED; soft-deleted generations, unexpired
  backups and idle revisions need it not destroyed) -- except the key disable-key was
  asked to cut off, whose versions may be DISABLED (never destroyed);
* destroy-versions never schedules a version that rotator's own guards saw pinned before
  the apply (rotator.inventory.scan_key + rotator.guards.destroy_blockers), nor one it
  was not asked to destroy; nothing else ever destroys;
* a refused or stale plan changed nothing before it stopped.

Examples: ROTATOR_HYPOTHESIS_EXAMPLES (default 100 for CI, ~4 s; nightly: 1000, ~25 s), derandomized
(the same examples every run), no deadline.

Backends: fake.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safety_support import violations
from worlds import ALL_AGENTS, ENCRYPTER_DECRYPTER
from worlds import APP_KEY as APP

from rotator import guards, playbooks
from rotator.backends.fake import FakeBackend
from rotator.backends.fake.faults import FaultSpec
from rotator.engine import apply_plan
from rotator.errors import BadInput, Failure, Refused, Stale, Waiting
from rotator.inventory import scan_key
from rotator.plan import build_plan, resolve_params
from rotator.retry import RetryPolicy

EXAMPLES = int(os.environ.get("ROTATOR_HYPOTHESIS_EXAMPLES", "100"))
NEW = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app-2026"
NOW = "2026-11-22T00:00:00Z"
PAST = ["2024-01-15T00:00:00Z", "2025-06-01T00:00:00Z", "2026-11-01T00:00:00Z"]
FUTURE = ["2026-11-25T00:00:00Z", "2026-12-20T00:00:00Z", "2031-01-01T00:00:00Z"]
REPOSITORY = "projects/demo/locations/us-east1/repositories/functions"


def v(key: str, n: int) -> str:
    return f"{key}/cryptoKeyVersions/{n}"


@st.composite
def worlds(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    states = {
        n: draw(st.sampled_from(["ENABLED", "ENABLED", "DISABLED", "DESTROY_SCHEDULED"]))
        for n in range(1, count + 1)
    }
    primary = draw(st.integers(1, count))
    states[primary] = "ENABLED"
    now_ok = [v(APP, n) for n, s in states.items() if s == "ENABLED"]  # what needs it now
    someday_ok = [v(APP, n) for n, s in states.items() if s in ("ENABLED", "DISABLED")]
    new_agents = draw(st.sampled_from([list(ALL_AGENTS), []]))
    doc: dict[str, Any] = {
        "project": "demo",
        "project_number": "111111111111",
        "now": NOW,
        "kms": [
            {
                "key": APP,
                "primary": primary,
                "versions": states,
                "iam": {ENCRYPTER_DECRYPTER: list(ALL_AGENTS)},
            },
            {
                "key": NEW,
                "primary": 1,
                "versions": {1: "ENABLED"},
                "iam": {ENCRYPTER_DECRYPTER: new_agents} if new_agents else {},
            },
        ],
        "storage": [],
    }
    live_choice = st.sampled_from([*now_ok, None, v(NEW, 1)])
    for b in range(draw(st.integers(0, 3))):
        versioning = draw(st.booleans())
        bucket: dict[str, Any] = {
            "bucket": f"bucket-{b}",
            "location": "US-EAST1",
            "default_kms_key": draw(st.sampled_from([APP, APP, NEW, None])),
            "versioning": versioning,
            "soft_delete": draw(st.sampled_from([0, "7d"])),
            "objects": [],
        }
        if draw(st.integers(0, 4)) == 0:
            bucket["retention"] = {
                "period": draw(st.sampled_from(["30d", "400d"])),
                "locked": draw(st.booleans()),
            }
        for i in range(draw(st.integers(0, 5))):
            generation = draw(st.integers(1, 3))
            obj: dict[str, Any] = {
                "name": f"o/{i}",
                "generation": generation,
                "kms_key_version": draw(live_choice),
                "size": draw(st.integers(0, 4096)),
                "created": draw(st.sampled_from(PAST)),
            }
            if draw(st.integers(0, 5)) == 0:
                obj["temporary_hold"] = True
            if draw(st.integers(0, 5)) == 0:
                obj["event_based_hold"] = True
            if draw(st.integers(0, 5)) == 0:
                obj["retention"] = {
                    "mode": draw(st.sampled_from(["Locked", "Unlocked"])),
                    "retain_until": draw(st.sampled_from(PAST + FUTURE)),
                }
            older = list(range(1, generation))
            if versioning and older:
                obj["noncurrent"] = [
                    {"generation": g, "kms_key_version": draw(live_choice), "size": 10}
                    for g in older
                    if draw(st.booleans())
                ]
                older = [g for g in older if g not in {n["generation"] for n in obj["noncurrent"]}]
            if bucket["soft_delete"] and older:
                obj["soft_deleted"] = [
                    {
                        "generation": g,
                        "kms_key_version": draw(st.sampled_from([*someday_ok, None])),
                        "size": 10,
                        "hard_delete_time": draw(st.sampled_from(FUTURE[:2])),
                    }
                    for g in older
                    if draw(st.booleans())
                ]
            bucket["objects"].append(obj)
        doc["storage"].append(bucket)
    if draw(st.booleans()):
        doc["firestore"] = [
            {
                "database": "projects/demo/databases/(default)",
                "location": "us-east1",
                "kms_key": APP,
                "active_key_versions": [v(APP, primary)],
                "reencrypt_after": draw(st.sampled_from(["1h", "6h"])),
                "backups": [
                    {
                        "backup": f"projects/demo/locations/us-east1/backups/b{i}",
                        "snapshot_time": "2026-11-21T00:00:00Z",
                        "expire_time": draw(st.sampled_from(FUTURE)),
                        "kms_key_version": draw(st.sampled_from(someday_ok)),
                    }
                    for i in range(draw(st.integers(0, 2)))
                ],
            }
        ]
    jobs = []
    for i in range(draw(st.integers(0, 2))):
        running = draw(st.booleans())
        streaming = draw(st.booleans())
        jobs.append(
            {
                "job": f"2026-11-0{i + 1}_00_00_00-{i}",
                "name": f"job-{i}",
                "region": "us-east1",
                "type": "STREAMING" if streaming else "BATCH",
                "streaming_engine": streaming and draw(st.booleans()),
                "state": "RUNNING" if running else "DONE",
                "created": draw(st.sampled_from(PAST)),
                "kms_key": APP,
                "kms_key_version": draw(st.sampled_from(now_ok if running else someday_ok)),
            }
        )
    if jobs:
        doc["dataflow"] = jobs
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        split = draw(st.sampled_from(["latest", "half", "pinned-old"]))
        traffic = [0] * n
        if split == "latest" or n == 1:
            traffic[-1] = 100
        elif split == "half":
            traffic[-1], traffic[-2] = 50, 50
        else:
            traffic[0] = 100
        revisions = []
        for i in range(n):
            choices = now_ok if traffic[i] > 0 else someday_ok
            revisions.append(
                {
                    "revision": f"api-{i + 1:05d}",
                    "kms_key": APP,
                    "kms_key_version": draw(st.sampled_from(choices)),
                    "traffic_percent": traffic[i],
                }
            )
        doc["run"] = [
            {
                "service": "projects/demo/locations/us-east1/services/api",
                "revocation_action": "PREVENT_NEW",
                "revisions": revisions,
            }
        ]
    if draw(st.booleans()):
        doc["functions"] = [
            {
                "function": "projects/demo/locations/us-east1/functions/resize",
                "kms_key": APP,
                "kms_key_version": draw(st.sampled_from(now_ok)),
                "docker_repository": REPOSITORY,
            }
        ]
    return doc


@st.composite
def faults(draw: Any) -> FaultSpec | None:
    """Most runs with transient faults on every service (retried, or the step re-run)."""
    rate = draw(st.sampled_from([0.05, 0.2, 0.0]))  # hypothesis leans to the first
    return FaultSpec(rate=rate, seed=draw(st.integers(0, 2**16))) if rate else None


@st.composite
def runs(draw: Any) -> tuple[dict[str, Any], str, str | None, dict[str, str]]:
    doc = draw(worlds())
    playbook = draw(st.sampled_from(["rotate-key", "replace-key", "destroy-versions", "disable-key"]))
    new_key, sets = None, {}
    if playbook == "replace-key":
        new_key = NEW
        if draw(st.booleans()):
            sets["firestore"] = "restore"
    if playbook == "destroy-versions":
        numbers = sorted(doc["kms"][0]["versions"])
        disabled = [n for n in numbers if doc["kms"][0]["versions"][n] == "DISABLED"]
        if disabled and draw(st.integers(0, 3)):
            numbers = disabled  # mostly what one would ask: disabled versions
        chosen = draw(st.lists(st.sampled_from(numbers), min_size=1, unique=True))
        sets["versions"] = ",".join(map(str, sorted(chosen)))
    return doc, playbook, new_key, sets


def states_of(doc: dict[str, Any], key: str) -> dict[int, str]:
    return {int(n): s for n, s in next(k for k in doc["kms"] if k["key"] == key)["versions"].items()}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(runs(), faults())
def test_after_plan_and_apply_nothing_depends_on_an_unusable_version(
    case: tuple[dict[str, Any], str, str | None, dict[str, str]], spec: FaultSpec | None
) -> None:
    world, playbook, new_key, sets = case
    backend = FakeBackend.from_dict(world, faults=spec, retry=RetryPolicy(sleep=lambda _s: None))
    event(f"faults at {spec.rate:.0%}" if spec else "no faults")
    before = backend.dump()
    assert violations(before) == [], "the generated world is inconsistent (a bug in the strategy)"
    inv = scan_key(backend, APP)
    destroy_pins = {n: guards.destroy_blockers(use) for n, use in inv.versions.items()}
    pb = playbooks.load(playbook)
    try:
        plan = build_plan(backend, pb, resolve_params(pb, APP, new_key, sets))
    except (Refused, BadInput) as e:
        event(f"{playbook}: plan {e.prefix} (exit {e.exit_code})")
        assert backend.dump() == before, "plan is read-only"
        return

    outcome = "complete"
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(4):
            try:
                apply_plan(
                    backend, plan, "sha", os.path.join(tmp, "plan.json"), concurrency=2, sleep=lambda _s: None
                )
                break
            except Waiting:
                backend.advance(timedelta(hours=7))
                outcome = "complete after waiting"
            except (Refused, Stale, Failure) as e:
                outcome = f"{e.prefix} (exit {e.exit_code})"
                break
        else:
            outcome = "still waiting"
    event(f"{playbook}: apply {outcome}")
    after = backend.dump()

    revoked = (APP,) if playbook == "disable-key" else ()
    bad = violations(after, revoked=revoked)
    assert not bad, f"{playbook} ({outcome}) left:\n  " + "\n  ".join(bad)

    old, new = states_of(before, APP), states_of(after, APP)
    for n, state in new.items():
        if state in ("DESTROY_SCHEDULED", "DESTROYED") and old.get(n) not in (
            "DESTROY_SCHEDULED",
            "DESTROYED",
        ):
            assert playbook == "destroy-versions", f"{playbook} destroyed version {n}"
            assert n in plan["params"]["versions"], f"version {n} was not asked for"
            assert not destroy_pins[n], f"version {n} was pinned: {guards.describe_pin(destroy_pins[n][0])}"
    for key in (NEW,):
        assert all(s == "ENABLED" for s in states_of(after, key).values()), f"{playbook} touched {key}"
    if playbook == "disable-key" and outcome.startswith("complete"):
        assert all(s != "ENABLED" for s in new.values()), new
    if outcome.startswith(("refused", "stale")) and playbook == "destroy-versions":
        assert after == before


def test_replace_key_restore_from_a_backup_under_a_disabled_version_is_caught_by_the_plan(
    tmp_path: Any,
) -> None:
    """Found by the property test: `replace-key --set firestore=restore` when the newest
    backup was taken under a version now DISABLED. The restore cannot work (R22); the
    plan must say so before any change (refuse, exit 3, naming the backup), or restore
    from a backup that can be read: never an apply that fails half-way (exit 1) after the
    grants and bucket defaults were already changed."""
    from helpers import WorldCli

    world = {
        "project": "demo",
        "now": NOW,
        "kms": [
            {
                "key": APP,
                "primary": 2,
                "versions": {1: "DISABLED", 2: "ENABLED"},
                "iam": {ENCRYPTER_DECRYPTER: list(ALL_AGENTS)},
            },
            {"key": NEW, "primary": 1, "versions": {1: "ENABLED"}, "iam": {}},
        ],
        "storage": [
            {
                "bucket": "bucket-0",
                "location": "US-EAST1",
                "default_kms_key": APP,
                "soft_delete": 0,
                "objects": [],
            }
        ],
        "firestore": [
            {
                "database": "projects/demo/databases/(default)",
                "location": "us-east1",
                "kms_key": APP,
                "active_key_versions": [v(APP, 2)],
                "backups": [
                    {
                        "backup": "projects/demo/locations/us-east1/backups/b0",
                        "snapshot_time": "2026-11-21T00:00:00Z",
                        "expire_time": FUTURE[1],
                        "kms_key_version": v(APP, 1),
                    }
                ],
            }
        ],
    }
    w = WorldCli(tmp_path, world)
    r = w.plan("replace-key", APP, "--new-key", NEW, "--set", "firestore=restore")
    if r.code == 3:
        assert "backups/b0" in r.last_err, r
        return
    assert r.code == 0, r
    r = w.apply()
    assert r.code != 1, f"the plan promised a restore that fails half-way: {r.last_err}"
