"""Alembic environment: migrate the database named by DATABASE_URL."""

import logging

from alembic import context
from sqlalchemy import create_engine, pool

import logs
import settings
from db.models import Base
from db.urls import sqlalchemy_url

target_metadata = Base.metadata


def run_migrations_online() -> None:
    if not logging.getLogger().handlers:  # `alembic upgrade` run as a command, not by a test
        logs.configure("migrate")
    url = context.config.attributes.get("database_url") or settings.load().database_url
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
