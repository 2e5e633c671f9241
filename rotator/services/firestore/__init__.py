"""Everything rotator knows of Firestore: see rotator/services/__init__.py."""
