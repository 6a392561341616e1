"""Database layer: engines and sessions, the declarative base, and the migration runner."""
