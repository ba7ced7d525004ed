"""The home: a person's own page (their services, what waits for them, their stars)."""
