"""Alembic migrations: one history for every domain's tables."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from quarterdeck.domains import model_modules

SCRIPT_LOCATION = str(Path(__file__).parent)
SEARCH_OBJECTS = {"search_fts", "search_vocab"}


def load_models() -> None:
    """Import every domain's tables onto Base.metadata, for autogenerate and the schema test."""
    for module in model_modules():
        importlib.import_module(module)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Search machinery made by raw SQL (FTS5 tables, tsvector column, trigram index) is not in the models."""
    if type_ == "table" and name is not None and (name in SEARCH_OBJECTS or name.startswith("search_fts_")):
        return False
    if type_ == "column" and name == "tsv":
        return False
    return not (type_ == "index" and name in {"ix_search_documents_tsv"})


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run on every start."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
