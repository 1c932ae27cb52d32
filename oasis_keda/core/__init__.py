"""The foundation every part of oasis-keda stands on.

Configuration schemas, the Redis key contract, settings, the model registry, task leases,
model directories, file storage, the records database and its analysis status machine,
the stage specifications, and access to a Kubernetes API server. It imports only the
standard library and third-party packages: the components (``scaler``, ``worker``,
``task_controller``) and the applications (``oasis_keda.cli``, ``api``, ``runtime``,
``kubectl``) are built on it, never the reverse. See docs/ARCHITECTURE.md.
"""
