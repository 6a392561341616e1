"""Identity: users, tenants, memberships, permissions, access/refresh tokens and API keys."""
