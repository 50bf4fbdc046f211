// The Event Grid system topic of the data account. Its BlobCreated subscription to the blob trigger
// is made by infra/hooks/subscribe-blob-events.sh after code deploy: the webhook needs the
// blobs_extension key, which exists only once the Functions host has started with the code.
param name string
param location string
param tags object = {}
param storageAccountId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = topic.name
