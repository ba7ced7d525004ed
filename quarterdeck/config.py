"""Settings read from QD_* environment variables and an optional quarterdeck.toml."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEV_SECRET = "quarterdeck-dev-secret-do-not-use"


def data_dir() -> Path:
    """The user's Quarterdeck folder: $XDG_DATA_HOME/quarterdeck, else ~/.local/share/quarterdeck.

    The default SQLite database and git clones live there, never in the current folder, so a
    command run from any folder finds the same database."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "quarterdeck"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'quarterdeck.db'}"


class Settings(BaseSettings):
    """Every knob of a Quarterdeck install. Built once by the app factory or the CLI and passed down."""

    model_config = SettingsConfigDict(env_prefix="QD_", toml_file="quarterdeck.toml", extra="forbid")

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db "
        "(default: quarterdeck.db in the user's data folder, see data_dir)",
    )
    site_name: str = "Quarterdeck"
    git_cache_dir: Path = Field(default_factory=lambda: data_dir() / "git")
    page_size: int = Field(default=50, ge=1, le=500)
    sql_echo: bool = False
    db_pool_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description="Database connections per server process; the request thread pool is sized to it",
    )
    db_pool_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How long a request waits for a free connection before it is answered 503",
    )
    db_busy_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How long a writer waits for a lock (SQLite's write lock, a PostgreSQL row lock) "
        "before it is answered 503",
    )
    max_concurrent_writes: int = Field(
        default=2,
        ge=1,
        le=500,
        description="Write requests a process runs at once; more wait their turn on the event loop, so "
        "reads keep the CPU and threads (SQLite runs one writer at a time whatever this says)",
    )
    write_queue_seconds: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="How long a write request waits for its turn before it is answered 503",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body of ordinary routes (forms, entity edits); larger is a 413",
    )
    max_bulk_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest body of the bulk routes (batches of deploy reports); larger is a 413",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated proxy addresses or networks whose X-Forwarded-For is believed; "
        "empty: the peer address is the client",
    )

    environment: str = Field(default="dev", pattern="^(dev|test|production)$")
    secret_key: str = Field(
        default=DEV_SECRET,
        min_length=16,
        description="Signs session cookies and CSRF tokens; set it in production",
    )
    base_url: str = Field(default="http://127.0.0.1:8080", description="Where users reach the portal")
    anonymous_read: bool = Field(
        default=False, description="Let visitors read the catalog without signing in"
    )
    local_login: bool = Field(default=True, description="Allow local accounts with passwords")
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)

    oidc_issuer: str | None = Field(default=None, description="OIDC issuer URL; enables single sign-on")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile groups"
    oidc_groups_claim: str = "groups"
    oidc_admin_group: str | None = Field(default=None, description="Members of this group become admins")
    oidc_provider_name: str = "single sign-on"

    registry_username: str | None = None
    registry_password: str | None = None
    registry_plain_http: str = Field(
        default="", description="Comma-separated registry hosts reached over http instead of https"
    )
    registry_cache_seconds: int = Field(default=60, ge=0, le=86400)

    prometheus_url: str | None = Field(default=None, description="Prometheus base URL for service graphs")
    prometheus_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    link_templates: dict[str, str] = Field(
        default_factory=dict,
        description="Links into logs and dashboards: title -> URL naming {service} {env} {from} {to} ...",
    )
    strict_references: bool = Field(
        default=False,
        description="A reference to a team, person, system or service the catalog does not have is an "
        "error (the import does not apply that entity; a portal edit answers 422) instead of a warning",
    )
    embedded_worker: bool = Field(
        default=True,
        description="`quarterdeck serve` runs a job worker in each of its processes (the embedded SQLite "
        "setup needs nothing else); switch off when `quarterdeck worker` processes run the jobs",
    )
    plugins: str = Field(
        default="",
        description="Comma-separated modules that each expose register_jobs(registry): job handlers the "
        "worker loads after the domains' own",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError(
                f"QD_DATABASE_URL has value {value!r}: expected sqlite:///PATH or postgresql+psycopg://..."
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"QD_TRUSTED_PROXIES holds {entry!r}: expected IP addresses or networks such as "
                    "10.0.0.5 or 10.0.0.0/24, separated by commas"
                ) from None
        return value

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError(
                "QD_SECRET_KEY must be set to a secret of your own when QD_ENVIRONMENT=production"
            )
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("QD_OIDC_CLIENT_ID is required when QD_OIDC_ISSUER is set")
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
