"""Environments, releases, deploy history, live versions and registry images."""
