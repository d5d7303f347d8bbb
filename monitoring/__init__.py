"""Monitoring of the served AITM model: Evidently reports over windows of logged predictions.

Every name (input fields, which of them are numbers, the funnel's steps) is the promoted
model's: its feature schema and the dataset spec inside it, read from the reference folder, so
any spec's funnel is monitored the same way.

Modules: `config` (thresholds), `reference` (the promoted model's evaluation window: built by
the training workflow, stored by the registry), `logs` (prediction log + labels -> one frame),
`metrics` (custom Evidently metrics), `report` (the report, named results, the tests),
`workspace` (project, dashboard, one snapshot per window), `synthetic` and `replay` (simulated
traffic or a spec's table, sent to the running service), `job` (the scheduled job), `cli`
(`python -m monitoring`). The kfp version of the job is wired in
pipelines/monitoring_pipeline.py from components/monitoring.py.
Evidently is imported only by `metrics`, `report` and `workspace`.
"""
