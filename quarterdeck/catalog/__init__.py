"""The catalog: services, systems, teams and people, their descriptors, import and search."""
