"""The local runtime: the whole system on one machine, scaled the way a cluster scales it.

``hpa`` and ``spec`` are pure (KEDA's 0 <-> 1 rules and the HPA's 1 <-> N arithmetic over a
ScaledObject); ``autoscaler`` drives them against the real scaler over gRPC and runs the
replicas as worker processes; ``supervisor`` starts and stops every process of ``up``;
``plots`` draws the sub-task timeline and the workers-over-time picture; ``synth`` writes
the built-in synthetic model; ``demo`` runs the end-to-end demonstration (both packages).
"""
