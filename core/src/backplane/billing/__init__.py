"""Billing: meters, usage recorded in the caller's transaction, and hard quotas held atomically.

Plans, charges, invoices and webhooks build on these tables (issue 5 continues).
"""
