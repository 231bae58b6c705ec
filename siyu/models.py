"""Every package's tables (siyu.packages.MODELS), imported once so that Alembic and `create_all` see them all."""
from config.database import Base
from siyu import packages

packages.modules(packages.MODELS)
metadata = Base.metadata
