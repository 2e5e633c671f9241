"""--watch (R13.4): after a disable, watch the services' logs for failures caused by the
key. One appears: re-enable what the step disabled, and stop the apply naming it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator.errors import Failure
from rotator.model import DISABLED, ENABLED
from rotator.names import parse_key

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlannedStep


def watch_after_disable(ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> None:
    """R13.4: after disabling, watch the services' logs for failures caused by the key.
    One appears: re-enable what this step disabled, and stop (exit 1) naming it."""
    key = parse_key(step.data["key"])
    numbers = list(result.get("disabled", []))
    disabled = [str(key.version(n)) for n in numbers]
    if not disabled or ctx.watch is None:
        return
    since = ctx.backend.clock.now()
    ctx.emit(f"watching the logs for {ctx.watch} for failures caused by {step.data['key']} (R13.4)")
    failures: list[Any] = []

    def failing() -> bool:
        failures[:] = ctx.backend.logs.key_failures(since)
        return bool(failures)

    deadline = ctx.monotonic() + ctx.watch.total_seconds()
    while not failing() and ctx.monotonic() < deadline:
        ctx.sleep(min(ctx.poll_seconds, max(0.0, deadline - ctx.monotonic())))
        if ctx.stopping():
            break
    if not failures and ctx.stopping():
        raise ctx.stop.error(f"while watching the logs after {step.id} (the disable stands)", ctx.plan_path)
    if not failures:
        ctx.emit(f"no failures in {ctx.watch}: the disable stands")
        return
    first = failures[0]
    for name in disabled:
        if ctx.backend.kms.get_crypto_key_version(name).state == DISABLED:
            ctx.backend.kms.update_crypto_key_version(name, ENABLED)
    ctx.journal.record(step.id, reenabled_after_watch=disabled)
    ctx.record(
        "watch.reenabled",
        versions=disabled,
        failure={"resource": first.resource, "service": first.service, "message": first.message},
    )
    raise Failure(
        f"{first.resource} ({first.service}) failed after the disable: {first.message}; "
        f"re-enabled {', '.join(str(n) for n in numbers)} (R13.4)",
        resource=first.resource,
        rule="R13",
    )
