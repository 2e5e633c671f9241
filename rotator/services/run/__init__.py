"""Everything rotator knows of Cloud Run services: see rotator/services/__init__.py."""
