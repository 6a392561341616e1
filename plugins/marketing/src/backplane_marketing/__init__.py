"""Backplane marketing: contacts (typed attributes, tags, consent, lists, timeline), CSV and
JSON-lines imports and exports, and segments compiled to SQL.

Campaigns, tracking, automations, forms and lead scoring come next (see the README)."""
