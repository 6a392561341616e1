"""Billing: meters, usage recorded in the caller's transaction, hard quotas held atomically,
plans, invoices and webhooks."""
