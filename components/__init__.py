"""Kubeflow components: thin wrappers over workflow (training) and monitoring.job."""

import os

# The image every task runs in: it holds the project (docker/Dockerfile). Read at compile time.
AITM_IMAGE = os.environ.get("AITM_IMAGE", "ghcr.io/example/aitm:0.1.0")
