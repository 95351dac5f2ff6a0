"""Everything that talks Drift: the API client, OAuth, rate limiting and the bundled simulator."""
