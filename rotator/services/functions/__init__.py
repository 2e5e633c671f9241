"""Everything rotator knows of Cloud Run functions, and of the Artifact Registry
repository their images live in: see rotator/services/__init__.py."""

from rotator.services.functions.spec import SPEC

__all__ = ["SPEC"]
