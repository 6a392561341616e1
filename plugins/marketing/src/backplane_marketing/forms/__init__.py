"""Hosted signup forms with double opt-in (migration ``marketing_0004_forms_ab``)."""
