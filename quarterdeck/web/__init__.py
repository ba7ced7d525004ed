"""The thin web layer shared by every domain: templating, dependencies, error rendering, assets."""
