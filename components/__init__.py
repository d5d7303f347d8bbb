"""Kubeflow lightweight components of the AITM training pipeline (see components/steps.py)."""
