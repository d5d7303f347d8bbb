"""The AITM training pipeline: Kubeflow wiring, local runs, compile and submit."""
