"""Evidence: the run document, its Markdown and HTML renderings, and the write-once archive."""
