"""API keys with roles, stored hashed; bearer authentication, role checks and a per-key rate limit."""
