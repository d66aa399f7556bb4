"""Running in a host: one run from settings to telemetry, the HTTP endpoint, the tenant write lock."""
