"""The activity watch: audit records from the Office 365 Management Activity API, parsed and judged.

Pure modules here: records (parsing), geo (offline geolocation), baseline (per-user state as plain data) and
detections (one module per detection). Handbook: ../shared/handbook/activity-feed.md §2-3; docs/detections.md.
"""
