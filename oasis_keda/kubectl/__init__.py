"""Kubernetes side of oasis-keda: manifest generation and the ``kubectl oasis`` plugin.

``manifests`` turns a registered model into its worker Deployment and KEDA ScaledObject
(pure: plain dicts, no I/O), from ``manifest_settings`` (the cluster-side choices) and
``names`` (object names, labels and annotations). ``plugin`` is the ``kubectl oasis``
command, with ``status`` (what it prints) and ``scaler_probe`` (asking the scaler); it
reaches the API server through :mod:`oasis_keda.core.kube`.
"""
