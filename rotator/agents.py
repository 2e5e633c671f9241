"""Service agents that use a key on a service's behalf (R5): each service's spec lists
its own (rotator/services/<name>/spec.py)."""

from __future__ import annotations

from rotator.services import spec

# The names the fakes still in rotator/backends/fake/ pass to `agents`, until they move
# into their service's package and take the name from its spec (issue 15).
STORAGE = "storage"
FIRESTORE = "firestore"
RUN = "run"
FUNCTIONS = "functions"


def agents(service: str, project_number: str) -> list[str]:
    """IAM members ('serviceAccount:...') that need Encrypter/Decrypter for `service`."""
    return [f"serviceAccount:{a.format(n=project_number)}" for a in spec(service).agents]
