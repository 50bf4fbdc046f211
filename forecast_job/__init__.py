"""forecast_job: the many-models compute package (one statistical model per data partition).

A self-contained sibling of scoring_job/: Azure ML uploads this folder alone as the code of a
parallel job; locally the same entry runs under a process pool. docs/many-models.md has the whole
pipeline. The contract the Function App uses, step by step:

1. validate   `table.read_table(source, TableOptions, TrainOptions) -> ValidatedTable`, or a
              `table.TableError` subclass (whole table unusable; `.code`, user-facing message).
              Options from the upload's blob metadata: `options.options_from_metadata(metadata)`
              (raises `options.OptionsError`).
2. prepare    `manifest.prepare_work(table, work_dir, run_id=, dataset=, train=) -> Manifest`
              writes <work>/manifest.json, rejections.json (per-partition rejections with
              reasons), partitions/partition=<id>/data.parquet and partitions/MLTable.
3. train      local: `python -m forecast_job.train --work W --output O [--workers N]`
              (or `train.run_local(W, O)`); Azure ML: `azureml.build_pipeline_job(...)`, whose
              parallel step calls `train.init()` / `train.run(mini_batch, context)`.
              Output: O/<partition id>/{model.pkl, baseline.pkl, result.json}; result.json is
              written last, `status` "trained" or "failed"; progress = count of result.json files.
              Resubmitting trains only partitions without a "trained" result.
4. publish    `python -m forecast_job.publish --work W --output O --registry index:R.sqlite
              --artifacts A --results S` (or `publish.publish(...)`): registers every trained
              partition (registry.py), runs the gate (gate.py), writes
              S/gate/run_id=<run>/gate_report.json, S/forecasts/run_id=<run>/part-0.parquet (with
              lo_/hi_<level> interval columns, intervals.py), S/metrics/run_id=<run>/part-0.parquet
              and S/history/run_id=<run>/part-0.parquet. Short histories (table.py marks them,
              short_history.py fits them) are trained, registered flagged and forecast like the rest.
5. serve      `registry.find_production(registry, dataset, keys) -> ModelVersion`; load
              `intervals.as_calibrated(pickle.loads(artifacts.get(version.artifact)))` and call
              `.predict(h=...)["mean"]` or `.intervals(h, levels)`.

Modules the Function App may import without statsforecast or pandas: options, levels, manifest,
naming, registry, gate, azureml (imports azure-ai-ml when called), environment, files.
"""
