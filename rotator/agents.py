"""Service agents that use a key on a service's behalf (R5): each service's spec lists
its own (rotator/services/<name>/spec.py)."""

from __future__ import annotations

from rotator.services import spec


def agents(service: str, project_number: str) -> list[str]:
    """IAM members ('serviceAccount:...') that need Encrypter/Decrypter for `service`."""
    return [f"serviceAccount:{a.format(n=project_number)}" for a in spec(service).agents]
