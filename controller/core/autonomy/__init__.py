"""Earned autonomy: per-agent track records and the levels they earn in a lane (pure)."""
