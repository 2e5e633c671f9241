"""Importing this package registers every step kind."""

from rotator.steps import (  # noqa: F401
    dataflow,
    firestore,
    functions,
    iam,
    kms,
    manual,
    preflight,
    rollback,
    run,
    storage,
)
from rotator.steps.base import REGISTRY, PlannedStep, StepKind

__all__ = ["REGISTRY", "PlannedStep", "StepKind"]
