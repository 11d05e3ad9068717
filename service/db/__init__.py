"""Storage: SQLAlchemy 2 models, engine/sessions and Alembic migrations (`service/migrations`)."""

from service.db.engine import Database
from service.db.models import Base

__all__ = ["Base", "Database"]
