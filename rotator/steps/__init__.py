"""Importing this package registers every step kind: the core ones here (Cloud KMS, IAM,
manual, preflight, rollback) and each service's from its package (rotator/services/<name>/steps.py)."""

from rotator.services.dataflow import steps as _dataflow_steps  # noqa: F401
from rotator.services.firestore import steps as _firestore_steps  # noqa: F401
from rotator.services.functions import steps as _functions_steps  # noqa: F401
from rotator.services.run import steps as _run_steps  # noqa: F401
from rotator.steps import (  # noqa: F401
    iam,
    kms,
    manual,
    preflight,
    rollback,
    storage,
)
from rotator.steps.base import REGISTRY, PlannedStep, StepKind

__all__ = ["REGISTRY", "PlannedStep", "StepKind"]
