"""Everything rotator knows of Cloud Storage: see rotator/services/__init__.py."""
