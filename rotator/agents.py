"""Service agents that use a key on a service's behalf (R5)."""

from __future__ import annotations

STORAGE = "storage"
FIRESTORE = "firestore"
DATAFLOW = "dataflow"
RUN = "run"
FUNCTIONS = "functions"
SERVICES = (STORAGE, FIRESTORE, DATAFLOW, RUN, FUNCTIONS)

_AGENTS: dict[str, tuple[str, ...]] = {
    STORAGE: ("service-{n}@gs-project-accounts.iam.gserviceaccount.com",),
    FIRESTORE: ("service-{n}@gcp-sa-firestore.iam.gserviceaccount.com",),
    DATAFLOW: (
        "service-{n}@dataflow-service-producer-prod.iam.gserviceaccount.com",
        "{n}-compute@developer.gserviceaccount.com",
    ),
    RUN: ("service-{n}@serverless-robot-prod.iam.gserviceaccount.com",),
    # "For all functions, you must grant the following service accounts access to the
    # key": Cloud Run functions, Artifact Registry (the image repository, R42), Cloud
    # Storage (source buckets), Cloud Run (the function runs as a Cloud Run service) and
    # Eventarc (triggers) (the Cloud Run functions CMEK page; R5).
    FUNCTIONS: (
        "service-{n}@gcf-admin-robot.iam.gserviceaccount.com",
        "service-{n}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
        "service-{n}@gs-project-accounts.iam.gserviceaccount.com",
        "service-{n}@serverless-robot-prod.iam.gserviceaccount.com",
        "service-{n}@gcp-sa-eventarc.iam.gserviceaccount.com",
    ),
}


def agents(service: str, project_number: str) -> list[str]:
    """IAM members ('serviceAccount:...') that need Encrypter/Decrypter for `service`."""
    return [f"serviceAccount:{a.format(n=project_number)}" for a in _AGENTS[service]]
