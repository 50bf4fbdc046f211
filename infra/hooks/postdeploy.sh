#!/usr/bin/env bash
# azd postdeploy hook: the two steps that need deployed code and an existing workspace.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/register-environment.sh" scoring_job
bash "$here/register-environment.sh" forecast_job
bash "$here/subscribe-blob-events.sh"
