"""Cloud Run functions, and the Artifact Registry repositories their images live in
(R41, R42, R43)."""

from __future__ import annotations

from rotator.changes import Change
from rotator.services.functions.api import FunctionsApi, FunctionsReads
from rotator.services.spec import ANYONE, Call, PinKind, Repeat, ServiceSpec

FUNCTION_KEY = "function_key"
FUNCTION = "function"
# Deployed while the primary it was recorded under was still propagating (R2, R43):
# the window counterpart of FUNCTION (rotator.windows).
FUNCTION_WINDOW = "function_in_propagation_window"
REPOSITORY_KEY = "repository_key"
REPOSITORY_IMAGES = "repository_images"

_FUNCTION_IMPACT = "executions in progress finish, but every new execution fails (R41, R42)"

SPEC: ServiceSpec[FunctionsApi, FunctionsReads] = ServiceSpec(
    name="functions",
    title="Cloud Run functions",
    # "For all functions, you must grant the following service accounts access to the
    # key": Cloud Run functions, Artifact Registry (the image repository, R42), Cloud
    # Storage (source buckets), Cloud Run (the function runs as a Cloud Run service) and
    # Eventarc (triggers) (the Cloud Run functions CMEK page; R5).
    agents=(
        "service-{n}@gcf-admin-robot.iam.gserviceaccount.com",
        "service-{n}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
        "service-{n}@gs-project-accounts.iam.gserviceaccount.com",
        "service-{n}@serverless-robot-prod.iam.gserviceaccount.com",
        "service-{n}@gcp-sa-eventarc.iam.gserviceaccount.com",
    ),
    pin_kinds=(
        PinKind(
            FUNCTION_KEY,
            "R42",
            True,
            True,
            "the function is redeployed under another key",
            "deploying fails; new executions fail while the key is unusable (R41, R42)",
            "{resource} is deployed with this key",
            key_level=True,
        ),
        PinKind(
            FUNCTION,
            "R42",
            True,
            True,
            "the function is redeployed under another version",
            _FUNCTION_IMPACT,
            "{resource} is deployed under this version",
            window=FUNCTION_WINDOW,
        ),
        PinKind(
            FUNCTION_WINDOW,
            "R43",
            True,
            True,
            "the function is redeployed after {after}",
            _FUNCTION_IMPACT,  # a use in a propagation window stops working as its direct kind does
            "{resource} {detail}",
        ),
        PinKind(
            REPOSITORY_KEY,
            "R42",
            True,
            True,
            "the repository is deleted (its images are encrypted with the key)",
            "images in the repository cannot be pulled (R42)",
            "{resource} (Artifact Registry) is protected by this key",
            key_level=True,
        ),
        # Images stay under the version that was primary when they were pushed; what runs
        # now pins through FUNCTION, so old images block only destroying (like an idle revision).
        PinKind(
            REPOSITORY_IMAGES,
            "R42",
            False,
            True,
            "the images pushed under it are deleted (or the repository)",
            "images pushed under it cannot be pulled: redeploying an old revision fails (R42)",
            "{resource} (Artifact Registry) holds images pushed under this version",
        ),
    ),
    products=("cloudfunctions.googleapis.com", "artifactregistry.googleapis.com"),
    calls={
        "list_functions": Call("cloudfunctions.functions.list"),
        "get_function": Call("cloudfunctions.functions.get"),
        "redeploy_function": Call("cloudfunctions.functions.update", Repeat.ONCE, named="update_function"),
        "get_repository": Call("artifactregistry.repositories.get"),  # the gcp adapter's
        "list_repositories": Call("artifactregistry.repositories.list"),
        "get_repository_key": Call("artifactregistry.repositories.get"),
        "create_repository": Call("artifactregistry.repositories.create", Repeat.ONCE),
        "repository_image_versions": Call("artifactregistry.repositories.get"),
        "test_iam_permissions": Call(ANYONE),
    },
    # Artifact Registry is served beside functions locally (the gcp backend's clients).
    endpoint_env="ROTATOR_ENDPOINT_FUNCTIONS",
    listed_once=frozenset({"list_functions", "list_repositories", "get_repository_key"}),
    key_changes=frozenset({Change.REDEPLOY_FUNCTION, Change.CREATE_REPOSITORY}),
    change_permissions={Change.REDEPLOY_FUNCTION: ("function", ("cloudfunctions.functions.update",))},
)
