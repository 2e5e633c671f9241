"""`rotator apply`: execute a saved plan's steps in order, journaled and resumable.

Each step re-checks what it touches before changing it; a world that moved under the
plan stops the run before the step (Stale, exit 4). A failed step stays pending in
the journal and reruns on the next apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rotator import apierrors as api
from rotator.audit import Audit
from rotator.backends.base import Backend
from rotator.errors import BadInput, Failure, Interrupted, RotatorError, Stale
from rotator.interrupts import StopRequest
from rotator.inventory import KeyInventory, scan_key
from rotator.journal import DONE, ROLLED_BACK, Journal, plan_life, progress_across_runs
from rotator.names import parse_key
from rotator.places import LocalPlace, Place, refuse_state_under_plan_key
from rotator.progress import NoProgress, ProgressFactory
from rotator.ratelimit import DEFAULT_CONCURRENCY
from rotator.services import SERVICES
from rotator.steps import REGISTRY, PlannedStep
from rotator.timeutil import parse_time

# A step whose un-retried call failed transiently is re-run (with its re-checks) this often.
STEP_RETRIES = 3
STEP_RETRY_SECONDS = 0.5
# A plan describes the world when it was made. Older than PLAN_AGE_WARN it is applied with
# a warning; older than PLAN_AGE_LIMIT it is refused (stale, exit 4) unless --force.
# Documented in docs/plan.md.
PLAN_AGE_WARN = timedelta(days=7)
PLAN_AGE_LIMIT = timedelta(days=30)


@dataclass
class ApplySession:
    """The engine's side of rotator.steps.base.ApplyContext (one per apply)."""

    backend: Backend
    plan: dict[str, Any]
    journal: Journal
    concurrency: int
    emit: Callable[[str], None]
    # The command line's settings for one service's steps (e.g. Cloud Storage's --engine),
    # carried as given: each service reads and types its own.
    options: dict[str, Any] = field(default_factory=dict)
    progress_bars: ProgressFactory = field(default=lambda _label, _total, _bytes: NoProgress())
    wait: timedelta | None = None  # --wait: how long a wait step may poll
    watch: timedelta | None = None  # --watch: how long to watch the logs after a disable
    poll_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    plan_path: str = ""
    stop: StopRequest = field(default_factory=StopRequest)
    audit: Audit | None = None

    def record(self, event: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.write(event, **fields)

    def stopping(self) -> bool:
        """A signal asked the apply to stop: loops start no new work."""
        return self.stop.stopping

    def raise_if_stopping(self, step_id: str) -> None:
        """Where a step can stop cleanly, after what was in flight has ended."""
        if self.stop.stopping:
            raise self.stop.error(f"in step {step_id}", self.plan_path)

    def wait_until(self, done: Callable[[], bool]) -> bool:
        """Poll `done` until it holds or --wait runs out. Returns True if still waiting."""
        if done():
            return False
        if not self.wait:
            return True
        deadline = self.monotonic() + self.wait.total_seconds()
        while self.monotonic() < deadline:
            self.sleep(min(self.poll_seconds, max(0.0, deadline - self.monotonic())))
            if self.stopping():
                raise self.stop.error("while waiting", self.plan_path)
            if done():
                return False
        return True

    def fresh_inventory(self, key: str) -> KeyInventory:
        """Always re-read: a guard must judge the world as it is now, not as planned."""
        return scan_key(
            self.backend,
            key,
            services=self.plan.get("services", SERVICES),
            projects=tuple(self.plan.get("projects") or (self.backend.project,)),
            acknowledged=any(a.get("key") == key for a in self.plan.get("acknowledgements", [])),
            replaced=self.rotation(key),
        )

    def rotation(self, key: str) -> tuple[int, int] | None:
        """(the primary this apply made for `key`, the one it replaced), from the plan and
        the journal: then a fresh redeploy pins exactly the replaced one (primary_windows)."""
        for raw in self.plan["steps"]:
            step = PlannedStep.from_json(raw)
            made = REGISTRY[step.kind].rotation(step, self.journal)
            if made is not None and made[0] == key:
                return made[1], made[2]
        return None


def backend_identity(backend: Backend) -> str:
    """Who the changes are made as: the credentials' account where the backend knows it."""
    who = getattr(backend, "identity", None)
    return who() if callable(who) else "unknown"


def check_target(backend: Backend, plan: dict[str, Any]) -> None:
    """A plan runs only against the world it was made for."""
    here, there = backend.describe(), plan["target"]
    for what in ("backend", "project", "world"):
        if there.get(what) != here.get(what):
            raise BadInput(
                f"plan was made for {what} {there.get(what)!r}, not {here.get(what)!r}; make a new plan here",
                resource=str(there.get(what)),
            )


def check_expectations(backend: Backend, plan: dict[str, Any]) -> None:
    """Before the first step: the key must be as the plan saw it (Stale otherwise)."""
    expect = plan["expect"]
    key = expect["key"]
    kms = backend.kms
    primary = kms.get_crypto_key(key).primary
    if primary != expect["primary"]:
        raise Stale(
            f"{key}: primary is version {primary}, the plan saw {expect['primary']}; plan again",
            resource=key,
            rule="R2",
        )
    states = {str(v.number): v.state for v in kms.list_crypto_key_versions(key)}
    for n, state in states.items():
        seen = expect["versions"].get(n)
        if seen != state:
            what = f"was {seen}" if seen else "did not exist"
            name = str(parse_key(key).version(int(n)))
            raise Stale(f"{name} is {state} but {what} when planned; plan again", resource=name)


def verify_done(ctx: ApplySession, life: dict[str, Any]) -> dict[str, Any]:
    """A re-apply of a done (or rolled-back) plan: re-check each step's applied effect
    against the world. Still true: nothing is done. Drifted: Stale, naming what differs.
    A step with no `done` event was never applied (a plan rolled back before it
    completed): that is drift too, never "already applied", and never a silent resume."""
    plan, journal = ctx.plan, ctx.journal
    results = {e["step"]: e.get("result") or {} for e in journal.events if e.get("event") == "done"}
    checked: list[str] = []
    never = [raw["id"] for raw in plan["steps"] if raw["id"] not in results]
    drift = [f"step{'s' if len(never) > 1 else ''} {', '.join(never)} never ran to the end"] if never else []
    for raw in plan["steps"]:
        if raw["id"] not in results:
            continue
        kind = REGISTRY[raw["kind"]]
        if kind.verifies:
            checked.append(raw["id"])
            drift += kind.verify(ctx, PlannedStep.from_json(raw), results[raw["id"]])
    applied = life.get("applied")
    if drift or not applied:
        more = f" (and {len(drift) - 1} more)" if len(drift) > 1 else ""
        done = f"was applied at {applied}" if applied else "never completed"
        stopped = f" (it stopped at step {life['at_step']})" if not applied and life.get("at_step") else ""
        why = (
            f"was rolled back at {life['rolled_back']}"
            if life["state"] == ROLLED_BACK
            else "has drifted since"
        )
        first = drift[0] if drift else "no completed apply is recorded"
        raise Stale(
            f"{ctx.plan_path} {done}{stopped} and the world {why}: {first}{more}; "
            "nothing was changed; plan again",
            resource=ctx.plan_path,
        )
    journal.verified(applied)
    ctx.emit(f"{ctx.plan_path}: already applied at {applied}; re-checked {', '.join(checked) or 'nothing'}")
    return {
        "plan": ctx.plan_path,
        "complete": True,
        "results": {},
        "already_applied": applied,
        "verified": checked,
    }


def resume_line(plan: dict[str, Any], events: list[dict[str, Any]], journal: Journal) -> str | None:
    """'resuming at step 2 of 7 (rewrite-objects), 12,345 of 20,000 objects done'."""
    ids = [s["id"] for s in plan["steps"]]
    todo = [i for i, sid in enumerate(ids) if not journal.is_done(sid)]
    if not todo or len(todo) == len(ids) and not any(e.get("event") == "start" for e in events):
        return None
    raw = plan["steps"][todo[0]]
    step = PlannedStep.from_json(raw)
    progress = progress_across_runs(events).get(step.id, {})
    return f"resuming at step {todo[0] + 1} of {len(ids)} ({step.id})" + REGISTRY[step.kind].resume_note(
        step, progress
    )


def check_age(backend: Backend, plan: dict[str, Any], force: bool, emit: Callable[[str], None]) -> None:
    """A plan made long ago describes a world that has likely moved on."""
    made = parse_time(plan.get("created") or "", field="plan created")
    age = backend.clock.now() - made
    if age <= PLAN_AGE_WARN:
        return
    days = f"{age.days} days old (made {plan['created']})"
    if age > PLAN_AGE_LIMIT and not force:
        raise Stale(
            f"the plan is {days}, past the {PLAN_AGE_LIMIT.days}-day limit; plan again, "
            "or pass --force to apply it anyway",
            resource=plan["params"]["key"],
        )
    emit(f"warning: the plan is {days}; the world may have moved since (plan again if unsure)")


def apply_plan(
    backend: Backend,
    plan: dict[str, Any],
    plan_sha256: str,
    plan_path: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait: timedelta | None = None,
    emit: Callable[[str], None] = lambda _m: None,
    sleep: Callable[[float], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    progress_bars: ProgressFactory = lambda _label, _total, _bytes: NoProgress(),
    watch: timedelta | None = None,
    stop: StopRequest | None = None,
    force: bool = False,
    place: Place | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Apply a saved plan. `options`: the settings of one service's steps, carried to
    them as given (Cloud Storage's engine=, manifest_bucket=, max_rps=, batch_threshold=:
    rotator/services/storage/settings.py)."""
    check_target(backend, plan)
    key = plan["params"]["key"]
    stop = stop or StopRequest()
    place = place or LocalPlace(plan_path)
    refuse_state_under_plan_key(place, plan)
    with backend.apply_lock(key), place.lock(emit, on_lost=stop.abort):
        journal = Journal(place, plan_sha256)
        earlier = journal.events[: journal.earlier_count]
        life = plan_life(earlier)
        audit = Audit(place, plan, plan_sha256, who=backend_identity(backend))
        ctx = ApplySession(
            backend,
            plan,
            journal,
            concurrency,
            emit,
            options=options,
            progress_bars=progress_bars,
            wait=wait,
            watch=watch,
            sleep=sleep or stop.sleep,
            monotonic=monotonic,
            plan_path=plan_path,
            stop=stop,
            audit=audit,
        )
        step_id: str | None = None
        try:
            if life["state"] in (DONE, ROLLED_BACK):
                result = verify_done(ctx, life)
                audit.write("apply.verified", applied=result["already_applied"], steps=result["verified"])
                return result
            if not any(journal.started_before(s["id"]) for s in plan["steps"]):
                check_age(backend, plan, force, emit)
                check_expectations(backend, plan)
            resuming = resume_line(plan, earlier, journal)
            if resuming:
                emit(resuming)
            results = {}
            for raw in plan["steps"]:
                step = PlannedStep.from_json(raw)
                if journal.is_done(step.id):
                    continue
                if stop.stopping:
                    raise stop.error(f"before step {step.id}", plan_path)
                step_id = step.id
                emit(f"step {step.id}: {step.title}")
                journal.start(step.id)
                for attempt in range(STEP_RETRIES + 1):
                    try:
                        results[step.id] = REGISTRY[step.kind].apply(ctx, step)
                        break
                    except Interrupted:
                        raise
                    except RotatorError as e:
                        journal.failed(step.id, e.prefix, e.message)
                        audit.step(raw, e.prefix, e.message)
                        raise
                    except api.ApiError as e:
                        journal.failed(step.id, "error", str(e))
                        if e.retryable and attempt < STEP_RETRIES and not stop.stopping:
                            # A call not safe to repeat blindly failed in a way that may or may
                            # not have taken effect: run the step again as a resumed apply
                            # would, re-checking the world before every change.
                            emit(f"step {step.id}: {e}; re-checking and trying again")
                            ctx.sleep(STEP_RETRY_SECONDS * (attempt + 1))
                            journal.resume_point()
                            journal.start(step.id)
                            continue
                        audit.step(raw, "error", str(e))
                        raise Failure(f"step {step.id}: {e}", resource=e.resource, rule=e.rule) from e
                journal.done(step.id, results[step.id])
                audit.step(raw, "done", results[step.id])
                step_id = None
                REGISTRY[step.kind].after_apply(ctx, step, results[step.id])
            journal.complete()
            audit.write("apply.complete")
            return {"plan": plan_path, "complete": True, "results": results}
        except Interrupted as e:
            journal.interrupted(step_id, stop.signal_name)
            audit.write("apply.interrupted", step=step_id, signal=stop.signal_name, message=e.message)
            raise
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the handlers
            if stop.signal_number is None:
                stop.request(2)
            journal.interrupted(step_id, stop.signal_name)
            audit.write("apply.interrupted", step=step_id, signal=stop.signal_name, message="stopped at once")
            raise stop.error(f"in step {step_id} (stopped at once)", plan_path) from None
        finally:
            journal.close()
