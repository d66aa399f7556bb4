"""The controls: one module per control, each with its catalogue entry, read, verdict, plans and wording."""
