"""Monitoring of the served AITM model: Evidently reports over windows of logged predictions.

Layers: `config` (thresholds), `reference` (the promoted model's evaluation window, written by
the pipeline), `logs` (prediction log + labels -> one frame), `metrics` (custom Evidently
metrics), `report` (the report, named results, the tests), `workspace` (project, dashboard,
one snapshot per window), `replay` (simulated traffic against the running service), `job`
(the scheduled job), `pipeline` (the job as a kfp pipeline). Evidently is imported only by
`metrics`, `report` and `workspace`.
"""
