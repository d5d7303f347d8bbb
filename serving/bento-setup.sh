#!/bin/sh
# Run by the bento's generated Dockerfile (serving/bentofile.yaml, docker.setup_script) as root,
# after the Python install and before the bento's files are copied in. The configuration that
# every AITM container shares (k8s/base/kustomization.yaml) names /app/datasets and
# /app/feature_repo, where docker/Dockerfile puts them; here they point into the bento.
set -eu
ln -s "$BENTO_PATH/src/datasets" /app/datasets
ln -s "$BENTO_PATH/src/feature_repo" /app/feature_repo
