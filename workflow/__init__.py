"""The training workflow's steps as domain functions: fetch, validate, train, evaluate and
gate, package. The kfp components in components/ wrap them; tests call them directly. Heavy
packages (feast, great_expectations, bentoml, torch) are imported inside the functions."""
