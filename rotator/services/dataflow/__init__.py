"""Everything rotator knows of Dataflow: see rotator/services/__init__.py."""

from rotator.services.dataflow.spec import SPEC

__all__ = ["SPEC"]
