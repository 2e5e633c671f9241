"""Cloud Run services: the key new revisions deploy with, and the version each revision
runs under, serving or idle (R40, R41, R43)."""

from __future__ import annotations

from rotator.changes import Change
from rotator.services.run.api import RunApi, RunReads
from rotator.services.spec import ANYONE, Call, PinKind, Repeat, ServiceSpec

RUN_KEY = "run_service_key"
RUN_SERVING = "run_serving_revision"
RUN_IDLE = "run_idle_revision"
# Deployed while the primary it was recorded under was still propagating (R2, R43):
# the window counterparts of RUN_SERVING and RUN_IDLE (rotator.windows).
RUN_WINDOW = "run_revision_in_propagation_window"
RUN_IDLE_WINDOW = "run_idle_revision_in_propagation_window"

_SERVING_IMPACT = "no new instance starts; existing ones follow the revocation action (R40, R41)"
_IDLE_IMPACT = "the revision can never serve again (R41)"

SPEC: ServiceSpec[RunApi, RunReads] = ServiceSpec(
    name="run",
    title="Cloud Run",
    agents=("service-{n}@serverless-robot-prod.iam.gserviceaccount.com",),
    pin_kinds=(
        PinKind(
            RUN_KEY,
            "R41",
            True,
            True,
            "the service is redeployed under another key",
            "deploying a new revision fails (R41)",
            "{resource} deploys new revisions with this key",
            key_level=True,
        ),
        PinKind(
            RUN_SERVING,
            "R43",
            True,
            True,
            "a new revision under another version takes its traffic",
            _SERVING_IMPACT,
            "{resource}: revision {names} serves traffic",
            window=RUN_WINDOW,
        ),
        PinKind(
            RUN_IDLE,
            "R43",
            False,
            True,
            "the revision is deleted",
            _IDLE_IMPACT,
            "{resource}: revision {names} (no traffic)",
            window=RUN_IDLE_WINDOW,
        ),
        # "{after}": the end of the window (PinGroup.frees_when); a redeploy before it is
        # in the window again.
        PinKind(
            RUN_WINDOW,
            "R43",
            True,
            True,
            "the service is redeployed after {after}",
            _SERVING_IMPACT,  # a use in a propagation window stops working as its direct kind does
            "{resource}: {names} {detail}",
            window_note="serves traffic and ",
        ),
        # Idle: blocks destroy only, as RUN_IDLE does; a redeploy does not free it.
        PinKind(
            RUN_IDLE_WINDOW,
            "R43",
            False,
            True,
            "the revision is deleted",
            _IDLE_IMPACT,
            "{resource}: revision {names} {detail}",
            window_note="has no traffic and ",
        ),
    ),
    products=("run.googleapis.com",),
    calls={
        "list_services": Call("run.services.list"),
        "get_service": Call("run.services.get"),
        "update_service": Call("run.services.update", Repeat.ONCE),
        "list_revisions": Call("run.revisions.list"),  # the gcp adapter's, for list_services
        "test_iam_permissions": Call(ANYONE),
    },
    endpoint_env="ROTATOR_ENDPOINT_RUN",
    listed_once=frozenset({"list_services"}),
    key_changes=frozenset({Change.DEPLOY_REVISION}),
    change_permissions={Change.DEPLOY_REVISION: ("service", ("run.services.update",))},
)
