"""Stopping a child started in a session of its own (start_new_session=True): signal it, wait, and
if it does not exit in time, SIGKILL its whole process group so nothing it started lingers."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, sig: signal.Signals, timeout: float) -> bool:
    """Send `sig` (the child's own clean shutdown); True if it exited within `timeout` s, else its
    group is killed and False."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False
    return True
