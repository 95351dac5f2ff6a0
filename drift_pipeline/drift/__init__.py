"""Everything that talks Drift: the API client, OAuth and rate limiting (the
simulator that stands in for Drift in tests and the demo is its own package, `drift_simulator`)."""
