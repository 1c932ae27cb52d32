"""oasis-keda: autoscaling and chunked execution for Oasis LMF models.

This package is the small shared core: settings, the Redis key contract, the model
configuration schemas, the model registry, busy-worker leases and the CLI. The
components live in the top-level packages `scaler`, `task_controller` and `worker`.
"""

__version__ = "0.1.0"
