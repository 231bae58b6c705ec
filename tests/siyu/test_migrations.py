"""Migrations: `siyu db upgrade` builds exactly the schema the models declare, and every step reverses."""
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from siyu import db
from siyu.models import metadata


def _check(url: str) -> None:
    # when the migrations run up to head
    db.upgrade(url)
    engine = create_engine(url)
    # then the database matches the models exactly
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"
    # and downgrading to base removes every table
    db.downgrade(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    # and upgrading again works (the downgrade really reversed everything)
    db.upgrade(url)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path}/migrations.db")


@pytest.mark.postgres
def test_migrations_on_postgresql(pg_url):
    name = f"siyu_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _check(make_url(pg_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
