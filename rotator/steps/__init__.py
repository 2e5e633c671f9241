"""Importing this package registers every step kind: the core ones (Cloud KMS, IAM,
manual, preflight, rollback) from their modules here, each service's from its package
(rotator/services/<name>/steps.py)."""

from importlib import import_module
from typing import Any

from rotator.services import SERVICES, part
from rotator.steps.base import REGISTRY, PlannedStep, StepKind

# The step kinds that belong to no service.
CORE = ("iam", "kms", "manual", "preflight", "rollback")

# In the order of their names, core and services together (the order the kinds were
# registered in before the services had packages; `rotator rules` lists them so).
for _name in sorted((*CORE, *SERVICES)):
    if _name in CORE:
        import_module(f"rotator.steps.{_name}")
    else:
        part(_name, "steps")


def asking_for_key_id(doc: dict[str, Any]) -> list[str]:
    """The steps of a plan that disable or destroy versions whatever they protect: an
    operator confirms those by typing the key's id, not a mere yes."""
    return [s["id"] for s in doc["steps"] if REGISTRY[s["kind"]].asks_for_key_id(PlannedStep.from_json(s))]


__all__ = ["REGISTRY", "PlannedStep", "StepKind", "asking_for_key_id"]
