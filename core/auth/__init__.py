"""Users, passwords, login sessions, lockout and API keys."""
