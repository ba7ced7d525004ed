"""Recognising catalog files of other products, so they are reported by name rather than skipped."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

FOREIGN_FORMATS = {
    "opslevel": "OpsLevel (opslevel.yml)",
    "cortex": "Cortex (cortex.yaml)",
    "datadog": "Datadog Service Catalog (service.datadog.yaml)",
    "port": "Port (port.yml)",
    "compass": "Atlassian Compass (compass.yml)",
    "gitlab-ci-catalog": "GitLab CI/CD catalog metadata",
}

_BY_SUFFIX = (
    ("opslevel.yml", "opslevel"),
    ("opslevel.yaml", "opslevel"),
    ("cortex.yaml", "cortex"),
    ("cortex.yml", "cortex"),
    ("service.datadog.yaml", "datadog"),
    ("service.datadog.yml", "datadog"),
    ("service.datadog.json", "datadog"),
    ("port.yml", "port"),
    ("port.yaml", "port"),
    ("compass.yml", "compass"),
    ("compass.yaml", "compass"),
)


def format_by_name(filename: str) -> str | None:
    name = PurePosixPath(filename).name.lower()
    for suffix, fmt in _BY_SUFFIX:
        if name == suffix or name.endswith(("__" + suffix, "." + suffix, "-" + suffix)):
            return fmt
    return None


def format_by_content(data: Any) -> str | None:
    """The other product a parsed document belongs to, judged by the keys only it uses."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        if "identifier" in first and "blueprint" in first:
            return "port"
        return None
    if not isinstance(data, dict):
        return None
    info = data.get("info")
    if isinstance(info, dict) and any(str(key).startswith("x-cortex-") for key in info):
        return "cortex"
    if "dd-service" in data or "schema-version" in data:
        return "datadog"
    if "identifier" in data and "blueprint" in data:
        return "port"
    if "configVersion" in data and str(data.get("id", "")).startswith("ari:"):
        return "compass"
    if data.get("version") == 1 and any(key in data for key in ("service", "component", "repository")):
        return "opslevel"
    spec = data.get("spec")
    if "apiVersion" not in data and isinstance(spec, dict) and ("components" in spec or "inputs" in spec):
        return "gitlab-ci-catalog"
    return None
