"""Chaos tests: real worker processes killed and paused against PostgreSQL (marked slow)."""
