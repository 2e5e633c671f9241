"""Importing this package registers every step kind."""

from rotator.steps import iam, kms, manual, storage  # noqa: F401
from rotator.steps.base import REGISTRY, PlannedStep, StepKind

__all__ = ["REGISTRY", "PlannedStep", "StepKind"]
