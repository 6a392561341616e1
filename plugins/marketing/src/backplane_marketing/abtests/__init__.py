"""A/B tests of a campaign's subject or content on a sample (migration
``marketing_0004_forms_ab``)."""
