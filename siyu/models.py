"""Every package's tables, imported once so that Alembic and `create_all` see the whole schema."""
import config.models  # noqa: F401
import membership.models  # noqa: F401
import bot.models  # noqa: F401
import bot.transfers.models  # noqa: F401
import webhooks.models  # noqa: F401
import segments.models  # noqa: F401
from config.database import Base

metadata = Base.metadata
