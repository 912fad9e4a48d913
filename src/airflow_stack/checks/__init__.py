"""The checks before and while a component runs: preflight, waits, secret fingerprints, health probes."""
