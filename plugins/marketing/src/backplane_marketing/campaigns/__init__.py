"""Campaigns: sandboxed templates, sending to a segment through the kernel's mail service
(chunked outbox tasks, a per-tenant rate, exactly one message per contact across crashes),
pause/resume/cancel, and the statistics tracking fills in."""
