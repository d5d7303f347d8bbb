"""Monitoring of the served AITM model: Evidently reports over windows of logged predictions.

Modules: `config` (thresholds), `reference` (the promoted model's evaluation window, written by
the pipeline), `logs` (prediction log + labels -> one frame), `metrics` (custom Evidently
metrics), `report` (the report, named results, the tests), `workspace` (project, dashboard,
one snapshot per window), `synthetic` and `replay` (simulated traffic, sent to the running
service), `job` (the scheduled job), `cli` (`python -m monitoring`). The kfp version of the job
is wired in pipelines/monitoring_pipeline.py from components/monitoring.py. Evidently is
imported only by `metrics`, `report` and `workspace`.
"""
