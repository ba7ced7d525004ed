"""Adapters for outside systems (git, registries, chat): no domain rules live here."""
