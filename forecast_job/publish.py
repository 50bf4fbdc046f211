"""After training: register every trained partition, run the gate, write the production map, the
batch forecast, the metrics and history tables and the gate report. One call, idempotent (a
repeat registers nothing twice).

    python -m forecast_job.publish --work DIR --output DIR --registry index:PATH.sqlite \
        --artifacts DIR [--artifact-uri URI] --results DIR

The artifacts folder is the models root (a local folder, or in Azure ML the work datastore's
`models/` mounted): each bucket's models, with the run's interval calibration in them, go into
one bundle `<dataset>/<run>/bucket=NNNN.bin` (a few hundred files for 10,000 partitions), and
`<dataset>/production.json` (production_map.py) is read as the champions and rewritten. Registry:
`index:PATH` (the SQLite index), `aml:` (the Azure ML workspace's model assets, aml_registry.py:
the workspace from the job's environment) or `mlflow:URI`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import write_text_atomic
from .gate import gate_report, run_gate
from .intervals import calibrate_run, calibrated_artifact
from .manifest import Manifest, load_rejections
from .production_map import MapRegistry, ProductionMap, map_path
from .registry import ArtifactStore, FolderArtifacts, IndexRegistry, ModelVersion, NewVersion, Registry, with_range
from .train import read_results

log = logging.getLogger("forecast_job")
GATE_REPORT = "gate_report.json"


@dataclass(frozen=True)
class PublishSummary:
    run_id: str
    registered: int
    failed: int
    rejected: int
    unserved: int
    pass_rate: float | None
    register_seconds: float
    gate_seconds: float
    forecast_seconds: float
    forecasts: str
    metrics: str
    gate_report: str
    short_history: int = 0  # trained with no holdout (short histories), counted in `registered`


def register_results(manifest: Manifest, records: list[dict], registry: Registry,
                     artifacts: ArtifactStore) -> list[ModelVersion]:
    """Bundle each bucket's trained models, each with the run's interval calibration in it
    (intervals.py), put every bundle once, and register the versions (their URIs name their bytes in
    the bundle) in one batch. A short history is registered flagged, with its reason and no baseline."""
    calibrations = calibrate_run(records, manifest.train.levels)
    by_bundle: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "trained":
            by_bundle.setdefault(record["bundle"], []).append(record)
    versions = []
    for source, bucket_records in sorted(by_bundle.items()):
        data = Path(source).read_bytes()
        bundle, ranges = bytearray(), []
        for record in bucket_records:
            placed = {}
            for kind, (offset, length) in record["artifacts"].items():
                calibrated = calibrated_artifact(data[offset:offset + length], calibrations[kind], manifest.horizon)
                placed[kind] = (len(bundle), len(calibrated))
                bundle += calibrated
            ranges.append(placed)
        bucket = Path(source).parent.name  # bucket=NNNN
        uri = artifacts.put(f"{manifest.dataset}/{manifest.run_id}/{bucket}.bin", bytes(bundle))
        for record, placed in zip(bucket_records, ranges, strict=True):
            uris = {kind: with_range(uri, *span) for kind, span in placed.items()}
            metrics = {**record["metrics"], **{f"baseline.{k}": v for k, v in record["baseline_metrics"].items()}}
            short = record.get("short_history") or {}
            versions.append(NewVersion(manifest.dataset, manifest.run_id, record["keys"], record["model_type"],
                                       metrics, uris["model"], uris.get("baseline", ""), flagged=bool(short),
                                       last_timestamp=record["last_timestamp"], freq=record["freq"],
                                       partition_id=record["partition_id"], observations=record["observations"],
                                       short_history=short.get("reason", "")))
    return registry.register_many(versions)


def load_map(root: Path, dataset: str) -> ProductionMap:
    """The dataset's current production map under the models root, or an empty one (a first run)."""
    path = Path(root) / map_path(dataset)
    return ProductionMap.from_json(path.read_bytes()) if path.exists() else ProductionMap(dataset)


def publish(work: Path, output: Path, registry: Registry, artifacts: FolderArtifacts, results: Path) -> PublishSummary:
    """Register, gate by the run's rule (the manifest's, the one training chose by) and forecast."""
    from .forecast import batch_forecast, history_table, metrics_table, run_folder

    manifest = Manifest.load(work)
    rule = manifest.train.gate
    wanted = {entry.id for entry in manifest.partitions}
    records = [r for r in read_results(output) if r["partition_id"] in wanted and r["run_id"] == manifest.run_id]
    started = time.perf_counter()
    mapped = MapRegistry(registry, load_map(artifacts.root, manifest.dataset))
    challengers = register_results(manifest, records, mapped, artifacts)
    registered = time.perf_counter()
    decisions = run_gate(mapped, challengers, rule)
    artifacts.put(map_path(manifest.dataset), mapped.result(manifest.run_id).to_json().encode())
    gated = time.perf_counter()
    rejected = load_rejections(work)
    failed = [{"partition_id": r["partition_id"], "keys": r["keys"], "error": r.get("error")}
              for r in records if r["status"] == "failed"]
    report = gate_report(decisions, rule, manifest.run_id, manifest.dataset, rejected, failed)
    report_path = write_text_atomic(run_folder(results, "gate", manifest.run_id) / GATE_REPORT,
                                    json.dumps(report, indent=1))
    forecasts, unserved = batch_forecast(manifest, mapped, artifacts, results)
    history_table(manifest, work, results)
    by_partition = {row["partition_id"]: row for row in report["partitions"]}
    metrics = metrics_table(manifest, records, by_partition, rejected, results)
    done = time.perf_counter()
    return PublishSummary(manifest.run_id, len(challengers), len(failed), len(rejected), len(unserved),
                          report["pass_rate"], registered - started, gated - registered, done - gated,
                          str(forecasts), str(metrics), str(report_path), short_history=report["short_history"])


def open_registry(spec: str) -> Registry:
    """`index:PATH` (the SQLite index), `aml:` (the Azure ML workspace of this job, aml_registry.py)
    or `mlflow:URI` (`mlflow:` alone reads MLFLOW_TRACKING_URI)."""
    kind, _, location = spec.partition(":")
    if kind == "index" and location:
        return IndexRegistry(Path(location))
    if kind == "aml":
        from .aml_registry import WorkspaceRegistry

        return WorkspaceRegistry.from_job_environment()
    if kind == "mlflow":
        from .mlflow_registry import MlflowRegistry

        uri = location or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise ValueError("--registry mlflow: needs a URI or MLFLOW_TRACKING_URI")
        return MlflowRegistry(uri)
    raise ValueError(f"--registry {spec!r}: use index:PATH, aml: or mlflow:URI")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the training job's input folder (manifest.json)")
    parser.add_argument("--output", type=Path, required=True, help="the training job's output folder")
    parser.add_argument("--registry", required=True, help="index:PATH.sqlite, aml: or mlflow:URI")
    parser.add_argument("--artifacts", type=Path, required=True, help="folder for registered model artifacts")
    parser.add_argument("--artifact-uri", default=None,
                        help="URI prefix the artifacts folder is known by elsewhere (a datastore path)")
    parser.add_argument("--results", type=Path, required=True, help="folder for forecasts/, metrics/, gate/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    artifacts = FolderArtifacts(args.artifacts, args.artifact_uri)
    summary = publish(args.work, args.output, open_registry(args.registry), artifacts, args.results)
    print(json.dumps(asdict(summary), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
