"""Kubernetes: GPU node inventory, GPU pod -> node index, and pod access from audit events.

Modules: ``client`` (the only ``kubernetes`` SDK importer), ``normalize`` (Node/Pod JSON ->
models), ``labels`` (label values -> chip ids), ``wrappers``/``events`` (audit events ->
sessions), ``auditfiles`` (file reading), ``audit`` (``kubernetes-audit`` source, webhook
parser), ``provider`` (``kubernetes`` source).
"""
