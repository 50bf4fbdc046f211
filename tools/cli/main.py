"""The `restyle` command: a local stack, uploads that start jobs, following them with progress bars,
and downloads of the results; the same commands against Azure (see tools/cli/target.py).

Every failure is one line on stderr and a non-zero exit: 1 a failed request or job, 2 bad usage
(unknown style, bad option), 3 a missing file, 4 an unreadable picture, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.footage import bundled_clip

from .follow import ENDED, Watched, download_results, failure_text, follow, progress_text
from .stack import DEFAULT_API_PORT, Stack, default_state_dir, run_stack
from .submit import submit
from .target import CliError, NotFound, Target

STATUSES = ("Pending", "Running", "Completed", "Failed", "Terminated", "ContinuedAsNew", "Canceled", "Suspended")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="restyle", description=__doc__.split("\n\n")[0])
    top.add_argument("--api", metavar="URL", help="the jobs API (default: $RESTYLE_API_URL or http://127.0.0.1:7071)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run Azurite + the Function App locally until Ctrl-C")
    up.add_argument("--state", type=Path, default=None,
                    help="folder for blobs, job history and logs (default: $RESTYLE_STATE_DIR or ~/.restyle)")
    up.add_argument("--port", type=int, default=DEFAULT_API_PORT, help="the API's port (default 7071)")
    up.add_argument("--storage-port", type=int, default=10000, help="Azurite's blob port (default 10000)")

    sub = commands.add_parser("submit", help="upload videos; each upload starts a job")
    sub.add_argument("files", nargs="+", type=Path, metavar="FILE")
    sub.add_argument("--style", help="a built-in style 0-25, a blend like 3:0.5,12:0.5, or an image in styles/")
    sub.add_argument("--scale", help="processing size as a fraction of the original (0 < scale <= 1)")
    sub.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="any scoring option, e.g. crf=20 or compile=false (repeatable)")
    _follow_flags(sub)

    status = commands.add_parser("status", help="one job in detail, or every job in short")
    status.add_argument("job_id", nargs="?", metavar="ID")
    _follow_flags(status)

    listing = commands.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", help=f"only jobs with these statuses, comma-separated ({', '.join(STATUSES)})")

    cancel = commands.add_parser("cancel", help="stop a job (its upload stays in input/)")
    cancel.add_argument("job_id", metavar="ID")

    styles = commands.add_parser("styles", help="write a contact sheet of the 26 built-in styles")
    styles.add_argument("--frame", type=Path, help="a picture or video to take the frame from (default: a sample)")
    styles.add_argument("--at", type=float, default=2.0, help="seconds into the video (default 2)")
    styles.add_argument("--width", type=int, default=320, help="width of each tile in pixels (default 320)")
    styles.add_argument("-o", "--out", type=Path, default=Path("styles.jpg"), help="where to write it (styles.jpg)")
    return top


def _follow_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--follow", action="store_true", help="show progress until the jobs end")
    command.add_argument("--download", type=Path, metavar="DIR",
                         help="when done, download each output and its preview here (implies --follow)")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except CliError as error:
        print(f"restyle: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # outside following (which says how to resume): an upload cut short
        print("\nrestyle: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except NotFound as error:
        if getattr(args, "job_id", None):  # the trigger has not started it yet, or a wrong id
            raise NotFound(f"{error} (a job shows up seconds after its upload; see `restyle list`)") from None
        raise


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        return run_stack(Stack(args.state or default_state_dir(), args.port, args.storage_port))
    if args.command == "styles":
        return write_styles(args)
    target = Target.from_environment(args.api)
    if args.command == "submit":
        submitted = submit(target, args.files, args.style or target.settings.default_style, args.option, args.scale)
        for item in submitted:
            print(f"{item.path} -> {target.settings.input_container}/{item.blob}: job {item.job_id}")
        return watch(target, [Watched(item.job_id, item.blob) for item in submitted], args)
    if args.command == "status":
        if not args.job_id:
            return list_jobs(target, None)
        job = target.api.request("GET", f"jobs/{args.job_id}")
        if args.follow or args.download:
            return watch(target, [Watched(args.job_id, job.get("blob") or args.job_id)], args)
        print_job(job)
        return 0
    if args.command == "list":
        return list_jobs(target, args.status)
    if args.command == "cancel":
        answer = target.api.request("DELETE", f"jobs/{args.job_id}")
        print(f"canceled job {args.job_id} ({answer.get('scoring_jobs_canceled', 0)} scoring runs stopped); "
              "its upload stays in the input container")
        return 0
    raise CliError(f"unknown command {args.command}", 2)


def watch(target: Target, watched: list[Watched], args: argparse.Namespace) -> int:
    """Follow (when asked), report how each job ended, download the results (when asked)."""
    if not (args.follow or args.download):
        return 0
    try:
        jobs = follow(target, watched)
    except KeyboardInterrupt:
        resume = " ".join(f"restyle status {item.job_id} --follow" + (f" --download {args.download}"
                                                                        if args.download else "")
                          for item in watched if not item.ended)
        print(f"\nstopped following; the jobs keep running. Follow again with: {resume}", file=sys.stderr)
        return 130
    failed = 0
    for item, job in zip(watched, jobs, strict=True):
        if job["status"] != "Completed":
            failed += 1
            print(f"{item.label} [{item.job_id}]: {job['status']}: {failure_text(job)}", file=sys.stderr)
            continue
        print(f"{item.label} [{item.job_id}]: Completed ({(job.get('output') or {}).get('frames')} frames)")
        if args.download:
            for path in download_results(target, job, args.download):
                print(f"  saved {path}")
    return 1 if failed else 0


def print_job(job: dict) -> None:
    print(f"job      {job['id']}")
    print(f"video    {job.get('blob')}")
    print(f"status   {progress_text(job)}")
    print(f"created  {job.get('created')}   updated {job.get('updated')}")
    if job.get("output"):
        print(f"output   {job['output'].get('output_blob')}")
        print(f"preview  {job['output'].get('preview_blob')}")
    if job["status"] in ENDED and job["status"] != "Completed":
        print(f"reason   {failure_text(job)}")


def list_jobs(target: Target, status: str | None) -> int:
    query = f"?status={status}" if status else ""
    jobs = target.api.request("GET", f"jobs{query}")["jobs"]
    if not jobs:
        print("no jobs" + (f" with status {status}" if status else ""))
        return 0
    for job in jobs:
        print(f"{job['id']}  {(job.get('created') or '')[:19]}  {job.get('blob') or '-'}  {progress_text(job)}")
    return 0


def write_styles(args: argparse.Namespace) -> int:
    from .styles import write_styles_sheet  # torch loads only for this command

    if args.out.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
        raise CliError(f"--out {args.out}: use a .jpg, .png or .webp name", 2)
    if args.width < 16:
        raise CliError("--width must be at least 16 pixels", 2)
    path = write_styles_sheet(args.frame or bundled_clip(), args.out, args.at, args.width)
    print(f"wrote {path}: the original and styles 0-25; submit with --style N")
    return 0


if __name__ == "__main__":
    sys.exit(main())
