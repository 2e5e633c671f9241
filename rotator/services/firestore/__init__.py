"""Everything rotator knows of Firestore: see rotator/services/__init__.py."""

from rotator.services.firestore.spec import SPEC

__all__ = ["SPEC"]
