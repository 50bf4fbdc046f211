#!/usr/bin/env bash
# Points the data account's BlobCreated events for each upload container at its blob trigger's
# webhook (Flex Consumption runs blob triggers from Event Grid only): input/ -> on_video_uploaded,
# tables/ -> on_table_uploaded. Runs after code deploy: the webhook's blobs_extension key exists
# only once the host has started with the functions.
# Inputs: the azd environment (by hand: `eval "$(azd env get-values)"` first).
set -euo pipefail

: "${AZURE_RESOURCE_GROUP:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${AZURE_FUNCTION_APP_NAME:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${AZURE_FUNCTION_APP_HOSTNAME:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${DATA_SYSTEM_TOPIC_NAME:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${DATA_INPUT_CONTAINER:?not set: run through azd or eval \"\$(azd env get-values)\"}"
: "${DATA_TABLES_CONTAINER:?not set: run through azd or eval \"\$(azd env get-values)\"}"

# Python function name of each Event Grid blob trigger in function_app, and its container.
TRIGGERS=("on_video_uploaded:$DATA_INPUT_CONTAINER" "on_table_uploaded:$DATA_TABLES_CONTAINER")
rg="$AZURE_RESOURCE_GROUP"

key=""
for attempt in $(seq 1 30); do
  key="$(az functionapp keys list --resource-group "$rg" --name "$AZURE_FUNCTION_APP_NAME" \
           --query systemKeys.blobs_extension --output tsv 2>/dev/null || true)"
  [ -n "$key" ] && break
  echo "Waiting for the Functions host to create the blobs_extension key ($attempt/30)..."
  sleep 10
done
if [ -z "$key" ]; then
  echo "No blobs_extension key on $AZURE_FUNCTION_APP_NAME: are the blob triggers deployed and the host running?" >&2
  exit 1
fi

subscribe() {
  local function_name="$1" container="$2"
  local webhook="https://$AZURE_FUNCTION_APP_HOSTNAME/runtime/webhooks/blobs?functionName=Host.Functions.$function_name"
  local subscription=(--resource-group "$rg" --system-topic-name "$DATA_SYSTEM_TOPIC_NAME"
                      --name "${function_name//_/-}")
  local filter=(--included-event-types Microsoft.Storage.BlobCreated
                --subject-begins-with "/blobServices/default/containers/$container/")
  # `create` is a PUT (create or replace), so a re-run just refreshes key and filter. Event Grid
  # validates the endpoint on every PUT; a host still warming up can miss that once.
  for attempt in 1 2 3; do
    if az eventgrid system-topic event-subscription create "${subscription[@]}" "${filter[@]}" \
         --endpoint-type webhook --endpoint "$webhook&code=$key" --only-show-errors --output none; then
      echo "Event subscription ${function_name//_/-}: $container/ -> $webhook"
      return 0
    fi
    echo "Endpoint validation failed (attempt $attempt/3); retrying in 20 s..."
    sleep 20
  done
  return 1
}

for trigger in "${TRIGGERS[@]}"; do
  subscribe "${trigger%%:*}" "${trigger#*:}"
done
