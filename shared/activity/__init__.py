"""The activity watch: audit records from the Office 365 Management Activity API, read, parsed and judged.

The feed client (feed), the state store (state and its backends), the pass that reads each blob once (ingest), and
the pure modules: records (parsing), geo (offline geolocation), baseline (per-user state as plain data) and
detections (one module per detection). Handbook: ../shared/handbook/activity-feed.md; docs/detections.md.
"""
