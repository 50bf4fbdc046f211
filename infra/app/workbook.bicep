// An Application Insights workbook over what restyle/telemetry.py emits: jobs by status, failure
// reasons, throughput, stage durations, GPU minutes per video, bytes moved. Activity spans arrive as
// `requests` (attributes in customDimensions), metrics as `customMetrics` (docs/deploy.md, Telemetry).
param applicationInsightsId string
param location string
param tags object = {}
param displayName string = 'Restyle jobs'

var items = [
    {
      type: 1
      name: 'title'
      content: {
        json: '## Restyle jobs\nSpans and metrics of restyle/telemetry.py (last 7 days).'
      }
    }
    {
      type: 3
      name: 'jobs-by-status'
      content: {
        version: 'KqlItem/1.0'
        title: 'Jobs by status'
        query: 'requests | where isnotempty(tostring(customDimensions.job_id)) | extend job_id = tostring(customDimensions.job_id), outcome = tostring(customDimensions.outcome) | summarize rejected = countif(outcome == "rejected"), cleaned = countif(name == "cleanup"), succeeded = countif(name == "cleanup" and tolower(tostring(customDimensions.succeeded)) == "true") by job_id | extend status = case(rejected > 0, "rejected", succeeded > 0, "succeeded", cleaned > 0, "failed", "running") | summarize jobs = count() by status'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'piechart'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'failure-reasons'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failure reasons'
        query: 'requests | where tostring(customDimensions.outcome) in ("failed", "rejected") | summarize failures = count() by reason = tostring(customDimensions.failure_reason), activity = name | order by failures desc'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'throughput'
      content: {
        version: 'KqlItem/1.0'
        title: 'Throughput (frames/s per segment, hourly mean)'
        query: 'customMetrics | where name == "restyle.scoring.frames_per_second" | summarize frames_per_second = sum(valueSum) / sum(valueCount) by bin(timestamp, 1h) | render timechart'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'stage-durations'
      content: {
        version: 'KqlItem/1.0'
        title: 'Stage durations'
        query: 'customMetrics | where name == "restyle.activity.duration" | summarize runs = sum(valueCount), mean_seconds = sum(valueSum) / sum(valueCount), max_seconds = max(valueMax) by activity = tostring(customDimensions.activity) | order by mean_seconds desc'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'gpu-minutes'
      content: {
        version: 'KqlItem/1.0'
        title: 'GPU minutes per video'
        query: 'customMetrics | where name == "restyle.scoring.gpu_seconds" | summarize gpu_minutes = round(sum(valueSum) / 60, 1) by job_id = tostring(customDimensions.job_id) | join kind=leftouter (requests | where name == "probe" | summarize video = take_any(tostring(customDimensions.blob)) by job_id = tostring(customDimensions.job_id)) on job_id | project video, job_id, gpu_minutes | order by gpu_minutes desc'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'bytes-moved'
      content: {
        version: 'KqlItem/1.0'
        title: 'Blob bytes moved'
        query: 'customMetrics | where name == "restyle.storage.bytes" | summarize gigabytes = round(sum(valueSum) / 1e9, 2) by activity = tostring(customDimensions.activity), direction = tostring(customDimensions.direction)'
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
  ]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsightsId, 'restyle-jobs-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    version: 'Notebook/1.0'
    serializedData: string({
      version: 'Notebook/1.0'
      items: items
      fallbackResourceIds: [
        applicationInsightsId
      ]
    })
  }
}

output workbookId string = workbook.id
