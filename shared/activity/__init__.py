"""The activity watch: the Office 365 Management Activity API feed, and what is built on it (issue 11)."""
