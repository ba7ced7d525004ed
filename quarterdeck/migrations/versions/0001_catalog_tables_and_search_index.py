"""catalog tables and search index

Revision ID: 0001
Revises:
Create Date: 2026-11-25 19:55:51.469291
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import quarterdeck.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_tables()
    _create_search_index()


def _create_tables() -> None:
    op.create_table(
        "catalog_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("location", sa.String(length=1000), nullable=False),
        sa.Column("revision", sa.String(length=100), nullable=True),
        sa.Column("last_imported_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_report", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_sources")),
        sa.UniqueConstraint("key", name=op.f("uq_catalog_sources_key")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("chat_handle", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("avatar_url", sa.String(length=1000), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_file", sa.String(length=1000), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("descriptor", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("import_errors", sa.JSON(), nullable=True),
        sa.Column("detached_from", sa.String(length=500), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("slug", name=op.f("uq_people_slug")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_people_source"), ["source"], unique=False)

    op.create_table(
        "search_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_documents")),
        sa.UniqueConstraint(
            "entity_type", "entity_id", name=op.f("uq_search_documents_entity_type_entity_id")
        ),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("lifecycle", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("system_ref", sa.String(length=200), nullable=True),
        sa.Column("owner_ref", sa.String(length=200), nullable=True),
        sa.Column("image_repository", sa.String(length=500), nullable=True),
        sa.Column("definition", sa.Text(), nullable=True),
        sa.Column("custom_fields", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_file", sa.String(length=1000), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("descriptor", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("import_errors", sa.JSON(), nullable=True),
        sa.Column("detached_from", sa.String(length=500), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tier IS NULL OR (tier >= 1 AND tier <= 4)", name=op.f("ck_services_tier_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("kind", "slug", name=op.f("uq_services_kind_slug")),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_services_lifecycle"), ["lifecycle"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_owner_ref"), ["owner_ref"], unique=False)
        batch_op.create_index("ix_services_slug", ["slug"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_system_ref"), ["system_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_tier"), ["tier"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_type"), ["type"], unique=False)

    op.create_table(
        "systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_ref", sa.String(length=200), nullable=True),
        sa.Column("domain_ref", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_file", sa.String(length=1000), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("descriptor", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("import_errors", sa.JSON(), nullable=True),
        sa.Column("detached_from", sa.String(length=500), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_systems")),
        sa.UniqueConstraint("slug", name=op.f("uq_systems_slug")),
    )
    with op.batch_alter_table("systems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_systems_domain_ref"), ["domain_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_systems_owner_ref"), ["owner_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_systems_source"), ["source"], unique=False)

    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("chat_channel", sa.String(length=200), nullable=True),
        sa.Column("parent_ref", sa.String(length=200), nullable=True),
        sa.Column("child_refs", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_file", sa.String(length=1000), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("descriptor", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("import_errors", sa.JSON(), nullable=True),
        sa.Column("detached_from", sa.String(length=500), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", quarterdeck.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("slug", name=op.f("uq_teams_slug")),
    )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teams_parent_ref"), ["parent_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_teams_source"), ["source"], unique=False)

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_ref", sa.String(length=200), nullable=False),
        sa.Column("person_ref", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(team_id IS NULL) != (person_id IS NULL)", name=op.f("ck_memberships_declared_by_one")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_memberships_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_memberships_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_memberships_person_ref", ["person_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_memberships_team_id"), ["team_id"], unique=False)
        batch_op.create_index("ix_memberships_team_ref", ["team_ref"], unique=False)

    op.create_table(
        "service_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=False),
        sa.Column("person_ref", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_contacts_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_contacts")),
    )
    with op.batch_alter_table("service_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_contacts_person_ref"), ["person_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_contacts_service_id"), ["service_id"], unique=False)

    op.create_table(
        "service_dependencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=30), nullable=False),
        sa.Column("target_kind", sa.String(length=20), nullable=False),
        sa.Column("target_slug", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_dependencies_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_dependencies")),
    )
    with op.batch_alter_table("service_dependencies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_dependencies_service_id"), ["service_id"], unique=False)
        batch_op.create_index("ix_service_dependencies_target", ["target_kind", "target_slug"], unique=False)

    op.create_table(
        "service_tags",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_tags_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", "tag", name=op.f("pk_service_tags")),
    )
    with op.batch_alter_table("service_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_tags_tag"), ["tag"], unique=False)


def downgrade() -> None:
    _drop_search_index()
    with op.batch_alter_table("service_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_tags_tag"))

    op.drop_table("service_tags")
    with op.batch_alter_table("service_dependencies", schema=None) as batch_op:
        batch_op.drop_index("ix_service_dependencies_target")
        batch_op.drop_index(batch_op.f("ix_service_dependencies_service_id"))

    op.drop_table("service_dependencies")
    with op.batch_alter_table("service_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_contacts_service_id"))
        batch_op.drop_index(batch_op.f("ix_service_contacts_person_ref"))

    op.drop_table("service_contacts")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_team_ref")
        batch_op.drop_index(batch_op.f("ix_memberships_team_id"))
        batch_op.drop_index("ix_memberships_person_ref")
        batch_op.drop_index(batch_op.f("ix_memberships_person_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_source"))
        batch_op.drop_index(batch_op.f("ix_teams_parent_ref"))

    op.drop_table("teams")
    with op.batch_alter_table("systems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_systems_source"))
        batch_op.drop_index(batch_op.f("ix_systems_owner_ref"))
        batch_op.drop_index(batch_op.f("ix_systems_domain_ref"))

    op.drop_table("systems")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_services_type"))
        batch_op.drop_index(batch_op.f("ix_services_tier"))
        batch_op.drop_index(batch_op.f("ix_services_system_ref"))
        batch_op.drop_index(batch_op.f("ix_services_source"))
        batch_op.drop_index("ix_services_slug")
        batch_op.drop_index(batch_op.f("ix_services_owner_ref"))
        batch_op.drop_index(batch_op.f("ix_services_lifecycle"))

    op.drop_table("services")
    op.drop_table("search_documents")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_source"))
        batch_op.drop_index(batch_op.f("ix_people_email"))

    op.drop_table("people")
    op.drop_table("catalog_sources")


SQLITE_SEARCH = [
    # Full text over name, slug, summary and body, kept in step with search_documents by triggers.
    """CREATE VIRTUAL TABLE search_fts USING fts5(
        name, slug, summary, body, content='search_documents', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2', prefix='2 3')""",
    # The words of the index, for typo-tolerant matching against names.
    "CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'col')",
    """CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN
        INSERT INTO search_fts(rowid, name, slug, summary, body)
            VALUES (new.id, new.name, new.slug, new.summary, new.body);
    END""",
    """CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, name, slug, summary, body)
            VALUES ('delete', old.id, old.name, old.slug, old.summary, old.body);
    END""",
    """CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, name, slug, summary, body)
            VALUES ('delete', old.id, old.name, old.slug, old.summary, old.body);
        INSERT INTO search_fts(rowid, name, slug, summary, body)
            VALUES (new.id, new.name, new.slug, new.summary, new.body);
    END""",
]

POSTGRES_SEARCH = [
    """ALTER TABLE search_documents ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(slug, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(summary, '')), 'B') ||
        setweight(to_tsvector('simple', coalesce(body, '')), 'C')) STORED""",
    "CREATE INDEX ix_search_documents_tsv ON search_documents USING gin (tsv)",
]


def _create_search_index() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)


def _drop_search_index() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("search_documents_ai", "search_documents_ad", "search_documents_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_vocab")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_documents_tsv")
        op.execute("ALTER TABLE search_documents DROP COLUMN IF EXISTS tsv")
