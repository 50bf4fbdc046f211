"""The bad-input table of docs/reliability.md, from the test module's own case list and results.

    python bench/bad_inputs.py            # runs tests/test_bad_inputs.py (~2 min), then prints the table
    python bench/bad_inputs.py --table    # prints the table from bench/results/bad_inputs.json only
    python bench/bad_inputs.py --quick    # the same: the cases themselves run in `make test`, and
                                          # tests/test_bad_inputs.py renders this table from its own run

The test writes what each case returned to BAD_INPUTS_RESULTS; this script sets it, so the table
shows what the app answered in that run, not what it is expected to answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bad_inputs.json"
CONTAINER = re.compile(r"\bbad(input|styles|work|output|rejected)[0-9a-f]{8}\b")
PREFIX = "Orchestrator function 'stylize_video' failed: "


def run_tests() -> int:
    env = {**os.environ, "BAD_INPUTS_RESULTS": str(RESULTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_bad_inputs.py"], cwd=ROOT, env=env).returncode


def short(text: str, limit: int = 150) -> str:
    text = CONTAINER.sub(r"\1", text.replace(PREFIX, "")).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def expected(case: dict) -> str:
    if "method" in case:
        return f"{case['status']} {case['code']}".strip()
    return {"rejected": f"rejected: {case['words']}", "completed": f"Completed, frames: {case['frames']}",
            "refused": "never stored"}[case["expect"]]


def what(case: dict) -> str:
    if "method" in case:
        body = f" `{short(case['body'], 60)}`" if case["body"] else ""
        return f"`{case['method']} {case['path']}`{body}"
    return f"drop `{case['blob']}`" + (f" (style `{case['style']}`)" if case["style"] else "")


def afterwards(returned: dict) -> str:
    found = [f"GET /api/jobs {returned['serving']}"]
    if "in_input" in returned:
        found.append("in input/" if returned["in_input"] else "not in input/")
    if returned.get("copy_intact"):
        found.append("identical copy + reason.json in rejected/")
    if returned.get("work_left") is not None:
        found.append(f"`work/<id>/`: {returned['work_left']} blobs")
    return ", ".join(found)


def line(number: int, row: dict) -> str:
    case, returned = row["expected"], row["returned"]
    return (f"| {number} | {row['case']} | {what(case)} | {expected(case)} | {short(returned['result'])} | "
            f"{afterwards(returned)} |")


def table(rows: list[dict]) -> str:
    header = "| # | case | input | expected | returned | afterwards |\n|---|---|---|---|---|---|"
    return "\n".join([header, *(line(number, row) for number, row in enumerate(rows, 1))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="print the table from the last results only")
    parser.add_argument("--quick", action="store_true", help="smoke: the table from the last results only")
    args = parser.parse_args()
    code = 0 if args.table or args.quick else run_tests()
    print(table(json.loads(RESULTS.read_text())))
    return code


if __name__ == "__main__":
    sys.exit(main())
