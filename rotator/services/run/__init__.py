"""Everything rotator knows of Cloud Run services: see rotator/services/__init__.py."""

from rotator.services.run.spec import SPEC

__all__ = ["SPEC"]
