"""The metastore: SQLAlchemy models, Alembic migrations and the one repository module of queries."""
