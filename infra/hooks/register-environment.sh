#!/usr/bin/env bash
# Registers a compute package's environment in the Azure ML workspace as NAME:<content hash>:
#   register-environment.sh scoring_job      (scoring_job/environment.py: Open MPI + CUDA image), the
#                                            app's RESTYLE_AML_ENVIRONMENT (NAME@latest); the default
#   register-environment.sh forecast_job     (forecast_job/environment.py: CPU image), the app's
#                                            RESTYLE_AML_FORECAST_ENVIRONMENT
# Unchanged content: no-op.
# Needs: az (logged in) and python3. Inputs: the azd environment (azd runs this as a hook; by
# hand: `eval "$(azd env get-values)"` first).
set -euo pipefail

: "${AZURE_RESOURCE_GROUP:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${AML_WORKSPACE_NAME:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${AML_ENVIRONMENT:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${AML_FORECAST_ENVIRONMENT:?not set: run through azd or eval \"\$(azd env get-values)\"}"

package="${1:-scoring_job}"
case "$package" in
  scoring_job) expected="$AML_ENVIRONMENT" ;;
  forecast_job) expected="$AML_FORECAST_ENVIRONMENT" ;;
  *) echo "usage: $0 [scoring_job|forecast_job]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

read -r name image version < <("${PYTHON:-python3}" "$here/environment_spec.py" "$workdir/conda.yml" "$package")
if [ "$name@latest" != "$expected" ]; then
  echo "$package/environment.py names '$name' but the app uses '$expected' (infra/main.bicep)" >&2
  exit 1
fi

az extension show --name ml >/dev/null 2>&1 || az extension add --name ml --only-show-errors
workspace=(--resource-group "$AZURE_RESOURCE_GROUP" --workspace-name "$AML_WORKSPACE_NAME")

if az ml environment show --name "$name" --version "$version" "${workspace[@]}" >/dev/null 2>&1; then
  echo "Azure ML environment $name:$version is already registered"
else
  az ml environment create --name "$name" --version "$version" --image "$image" \
    --conda-file "$workdir/conda.yml" "${workspace[@]}" --only-show-errors --output none
  echo "Registered Azure ML environment $name:$version (its image is built on the first job)"
fi
