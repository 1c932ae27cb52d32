"""Kubernetes side of oasis-keda.

``generate`` turns a registered model into its worker Deployment and KEDA ScaledObject
(pure: plain dicts, no I/O). ``client`` is a deliberately small Kubernetes API client over
HTTP (in-cluster service account or the current kubeconfig context) used by
``deletion_cost`` (workers keep their pod's deletion cost current) and by the
``kubectl oasis`` plugin.
"""
