"""Kubernetes side of oasis-keda.

``generate`` turns a registered model into its worker Deployment and KEDA ScaledObject
(pure: plain dicts, no I/O). ``cluster`` reaches the API server through the official
``kubernetes`` client (in-cluster service account or a kubeconfig context); it is used by
``deletion_cost`` (workers keep their pod's deletion cost current) and by the
``kubectl oasis`` plugin.
"""
