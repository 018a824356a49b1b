"""Analysis: judges turn query results into measurements; the policy turns measurements
into outcomes under a check's limits."""
