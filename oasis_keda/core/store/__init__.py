"""Records database: portfolios, analyses, sub-tasks and uploaded files.

SQLAlchemy ORM over a SQLite file by default (WAL mode, so the controller, the workers and
the API can share it on one machine) or PostgreSQL when ``OASIS_KEDA_DATABASE_URL`` names
one. Models (and their configurations) are kept here (``RegisteredModel``) and cached in
the Redis registry, which every component reads (:mod:`oasis_keda.core.registry_store`);
records here refer to a model by its registry id. Analyses change status only through the
compare-and-set moves of :mod:`oasis_keda.core.store.transitions`.
"""

from oasis_keda.core.statuses import AnalysisStatus, SubTaskStatus
from oasis_keda.core.store.db import make_engine, make_session_factory
from oasis_keda.core.store.models import (
    Analysis,
    Base,
    Portfolio,
    RegisteredModel,
    RegistrySetting,
    StoredFile,
    SubTask,
    utcnow,
)

__all__ = [
    "Analysis",
    "AnalysisStatus",
    "Base",
    "Portfolio",
    "RegisteredModel",
    "RegistrySetting",
    "StoredFile",
    "SubTask",
    "SubTaskStatus",
    "make_engine",
    "make_session_factory",
    "utcnow",
]
