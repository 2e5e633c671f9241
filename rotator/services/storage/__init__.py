"""Everything rotator knows of Cloud Storage: see rotator/services/__init__.py."""

from rotator.services.storage.spec import SPEC

__all__ = ["SPEC"]
