#!/usr/bin/env bash
# Build a deployable SAM/CloudFormation template for one stage, with no AWS account:
#   infra/build/merge.json            what Chalice does not own (python -m infra.template)
#   infra/build/package/sam.json      Chalice's template with merge.json merged in
#   infra/build/package/deployment.zip
# then lint it with cfn-lint. Usage: STAGE=prod bash infra/package.sh   (default stage: dev)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STAGE="${STAGE:-dev}"
BUILD=infra/build
# chalice package needs a region (never credentials): it only names things, it calls no AWS API.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
if [[ -z "${VIRTUAL_ENV:-}" && -x .venv/bin/python ]]; then
  PATH="$PWD/.venv/bin:$PATH"
fi

rm -rf "$BUILD/package"
mkdir -p "$BUILD"
python -m infra.template --stage "$STAGE" --out "$BUILD/merge.json"
# Bundling requirements.txt uses pip: PyPI, a cached .chalice/deployments zip, or, offline, wheels
# made from the virtualenv: python -m infra.wheelhouse infra/build/wheels, then
# PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/infra/build/wheels bash infra/package.sh
# The functions' policy files (.chalice/policies/<stage>/) are written first, as make deploy does.
python -m infra.policies --stage "$STAGE"
chalice package --stage "$STAGE" --merge-template "$BUILD/merge.json" "$BUILD/package"
cfn-lint "$BUILD/package/sam.json"

echo "stage $STAGE: cfn-lint clean"
ls -l "$BUILD/merge.json" "$BUILD/package/sam.json" "$BUILD/package/deployment.zip"
