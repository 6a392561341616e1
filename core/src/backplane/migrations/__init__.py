"""The kernel's alembic environment (``env.py``) and revisions (``versions/``)."""
