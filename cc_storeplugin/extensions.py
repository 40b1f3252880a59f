"""Extension singletons, bound to an app in ``create_app`` via ``init_app``."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from cc_storeplugin.crypto import secretbox
from cc_storeplugin.models.base import Base
from cc_storeplugin.queueing import queues

db = SQLAlchemy(model_class=Base)
migrate = Migrate()

__all__ = ["db", "migrate", "queues", "secretbox"]
