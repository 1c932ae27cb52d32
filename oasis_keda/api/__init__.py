"""HTTP API compatible with the Oasis platform v2 API subset the oasislmf client uses.

``create_app(ApiSettings.from_env(os.environ))`` builds the FastAPI app; ``oasis-keda api
serve`` runs it under uvicorn. Models come from the Redis registry (the scaler's source of
truth), records from the SQLAlchemy store, and generate/run/cancel go to the task
controller.
"""

from oasis_keda.api.app import create_app
from oasis_keda.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
