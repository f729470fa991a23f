"""Kubernetes YAML in and out: ``kube play`` runs Pods and Deployments as dockyard pods, ``generate kube``
writes real manifests for containers and pods, so a workload can move to a Kubernetes cluster as is.
"""
