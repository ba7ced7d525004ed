"""Settings read from QD_* environment variables and an optional quarterdeck.toml, each checked when
they load: the annotation link rules (AnnotationLinkRule) too, so a bad one stops every command and the
server at startup, naming its key."""

from __future__ import annotations

import ipaddress
import os
import re
import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
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


ANNOTATION_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,316}")
LINK_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?")
LINK_JOIN = re.compile(r"[A-Za-z0-9/._~-]*")
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LINK_PART = re.compile(r"[0-9]")


def link_placeholders(template: str) -> list[tuple[str, str]]:
    """(name, format spec) of each `{...}` of a link template, in order; ValueError if malformed."""
    found = []
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if conversion:
            raise ValueError(f"{{{name}!{conversion}}} has a conversion; write {{{name}}}")
        found.append((name, spec or ""))
    return found


def whole_url_placeholder(template: str) -> str | None:
    """The placeholder's name when the template is that one placeholder alone (`{value}`, `{url}`):
    the value itself is the link."""
    parsed = list(string.Formatter().parse(template))
    if len(parsed) == 1 and not parsed[0][0] and parsed[0][1] and not parsed[0][2]:
        return parsed[0][1]
    return None


class AnnotationLinkRule(BaseModel):
    """How a service page shows one annotation key (catalog/annotation_links.py).

    `url` is a template: `{value}` is the annotation's value with each `/`-separated part
    percent-encoded (`{value:SEP}` joins the parts with SEP instead of `/`), `{0}`, `{1}`... are those
    parts, `{name}` a named group of `pattern`. A template that is one placeholder alone takes a whole
    http(s) URL from the value (on one of `hosts`, when given). Without `url` the key is known but shown
    as text; a `secret` key is never linked and its value is masked. `pattern` is the shape the whole
    value must have (`shape` says it in words for the page's note)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    label: str | None = Field(default=None, min_length=1, max_length=100)
    pattern: str | None = Field(default=None, min_length=1, max_length=1000)
    shape: str | None = Field(default=None, min_length=1, max_length=200)
    hosts: tuple[str, ...] = ()
    secret: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> AnnotationLinkRule:
        problem = _link_rule_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _link_rule_problem(rule: AnnotationLinkRule) -> str | None:
    """What is wrong with a rule, in words naming the part, or None."""
    groups: set[str] = set()
    if rule.pattern is not None:
        try:
            groups = set(re.compile(rule.pattern).groupindex)
        except re.error as exc:
            return f"pattern {rule.pattern!r} does not compile: {exc}"
    for host in rule.hosts:
        if not LINK_HOST.fullmatch(host) or ":" in host:
            return f"hosts has {host!r}: expected lower-case host names such as grafana.example.com"
    if rule.url is None:
        return "hosts need a url of one placeholder such as {value}" if rule.hosts else None
    if rule.secret:
        return "a secret key is never a link: leave out url"
    template = rule.url
    try:
        placeholders = link_placeholders(template)
    except ValueError as exc:
        return f"url {template!r} is malformed: {exc}"
    for name, spec in placeholders:
        if re.fullmatch("[0-9]+", name) and len(name) > 1:
            return f"url names {{{name}}}: parts are {{0}} to {{9}}"
        if name != "value" and not LINK_PART.fullmatch(name):
            if not GROUP_NAME.fullmatch(name):
                return f"url names {{{name}}}: use {{value}}, {{0}}, {{1}}... or a named group of pattern"
            if name not in groups:
                return f"url names {{{name}}}: pattern needs a group (?P<{name}>...)"
        if spec and (name != "value" or not LINK_JOIN.fullmatch(spec)):
            return f"url has {{{name}:{spec}}}: only {{value:SEP}} takes a separator (A-Z a-z 0-9 / . _ ~ -)"
    if any(ch.isspace() or not ch.isprintable() for ch in template):
        return "url has spaces or control characters"
    if whole_url_placeholder(template):
        return None
    if rule.hosts:
        return "hosts apply only to a url of one placeholder such as {value}; this url names its host"
    scheme, sep, rest = template.partition("://")
    if not sep or scheme not in ("http", "https"):
        return f"url {template!r} must start with http:// or https://"
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    brace = rest.find("{")
    if 0 <= brace < end:
        return f"url {template!r} must write its host out: a placeholder may only follow the first /"
    if not LINK_HOST.fullmatch(rest[:end]):
        return f"url {template!r} has host {rest[:end]!r}: expected a lower-case host name, no user name"
    return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


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
    annotation_links: dict[str, AnnotationLinkRule | None] = Field(
        default_factory=dict,
        description="Annotation keys shown as links on service pages, added to or replacing the defaults "
        "(catalog/annotation_links.py): key -> URL template, or {url, label, pattern, shape, hosts, secret}, "
        "or null to show a default key as text",
    )
    webhook_headers: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Header sets a pipeline's notify step names (`headers: [ops]`), so secrets stay out of "
        'pipeline files: name -> {header: value}, e.g. {"ops": {"Authorization": "Bearer ..."}}',
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
    deploy_drivers: Path | None = Field(
        default=None,
        description="YAML file saying which deploy driver (command, local, a plugin) carries out the deploys "
        "of which service in which environment, with each driver's configuration (docs/drivers.md)",
    )
    deploy_state_dir: Path = Field(
        default_factory=lambda: data_dir() / "deploys",
        description="Where deploy drivers keep their state: applied idempotency keys, the local driver's "
        "HAProxy and processes (one folder per driver)",
    )

    @field_validator("deploy_drivers")
    @classmethod
    def _drivers_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"QD_DEPLOY_DRIVERS names {str(value)!r}, which is not a file")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError(
                f"QD_DATABASE_URL has value {value!r}: expected sqlite:///PATH or postgresql+psycopg://..."
            )
        return value

    @field_validator("annotation_links", mode="before")
    @classmethod
    def _annotation_link_rules(cls, value: Any) -> Any:
        """Each entry checked on its own, so a bad one is refused naming its key."""
        if not isinstance(value, dict):
            return value
        rules: dict[str, AnnotationLinkRule | None] = {}
        for key, raw in value.items():
            if not isinstance(key, str) or not ANNOTATION_KEY.fullmatch(key):
                raise ValueError(f"key {key!r} is not an annotation key such as gitlab.com/project-slug")
            try:
                rules[key] = (
                    None
                    if raw is None
                    else AnnotationLinkRule.model_validate({"url": raw} if isinstance(raw, str) else raw)
                )
            except ValidationError as exc:
                raise ValueError(f"key {key!r}: {_first_error(exc)}") from None
        return rules

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
