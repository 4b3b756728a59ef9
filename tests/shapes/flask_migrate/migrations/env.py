"""Flask-Migrate's env.py (its template, shortened): the engine and metadata come from current_app."""
from alembic import context
from flask import current_app

config = context.config


def get_engine():
    return current_app.extensions["migrate"].db.engine


config.set_main_option("sqlalchemy.url", get_engine().url.render_as_string(hide_password=False).replace("%", "%%"))
target_db = current_app.extensions["migrate"].db


def run_migrations_online():
    conf_args = current_app.extensions["migrate"].configure_args
    connectable = get_engine()
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
