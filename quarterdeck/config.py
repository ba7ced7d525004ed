"""Settings read from QD_* environment variables and an optional quarterdeck.toml."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Every knob of a Quarterdeck install. Built once by the app factory or the CLI and passed down."""

    model_config = SettingsConfigDict(env_prefix="QD_", toml_file="quarterdeck.toml", extra="forbid")

    database_url: str = Field(
        default="sqlite:///./var/quarterdeck.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    site_name: str = "Quarterdeck"
    git_cache_dir: Path = Path("./var/git")
    page_size: int = Field(default=50, ge=1, le=500)
    sql_echo: bool = False

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError(
                f"QD_DATABASE_URL has value {value!r}: expected sqlite:///PATH or postgresql+psycopg://..."
            )
        return value

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
