"""Everything rotator knows of Dataflow: see rotator/services/__init__.py."""
