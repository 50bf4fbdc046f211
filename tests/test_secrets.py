"""No secrets in the repository: keys, connection strings with keys, SAS tokens, private keys.

The one exception is Azurite's published development key (restyle/settings.py), which is the same
on every machine and opens nothing but a local emulator.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

SECRET_PATTERNS = {
    "storage account key": re.compile(r"AccountKey=([A-Za-z0-9+/=]{40,})"),
    "SAS signature": re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{20,}"),
    "shared access key": re.compile(r"SharedAccessKey=[A-Za-z0-9+/=]{20,}"),
    "App Insights instrumentation key": re.compile(r"InstrumentationKey=[0-9a-f]{8}-[0-9a-f]{4}-"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    "Functions key in a URL": re.compile(r"[?&]code=[A-Za-z0-9_\-]{30,}={0,2}"),
    "client secret": re.compile(r"(?i)client_?secret\s*[:=]\s*['\"][^'\"\s]{8,}"),
}


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in names if name and not name.endswith(b"package-lock.json")]
    return [path for path in files if path.is_file() and b"\0" not in path.read_bytes()[:4096]]


def find_secrets(text: str) -> list[str]:
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            if AZURITE_DEV_KEY not in match.group(0):
                found.append(f"{kind}: {match.group(0)[:40]}...")
    return found


def test_no_tracked_file_holds_a_secret():
    leaks = {str(path.relative_to(ROOT)): hits for path in tracked_text_files()
             if (hits := find_secrets(path.read_text(errors="replace")))}
    assert leaks == {}


def test_the_scanner_finds_each_kind_of_secret():
    # Assembled from parts, so that this file itself holds no text the scanner would flag.
    samples = [
        "DefaultEndpointsProtocol=https;AccountName=prod;Account" + "Key=" + "Q" * 86 + "==;",
        "https://prod.blob.core.windows.net/input/a.mp4?sv=2024-01-01&s" + "ig=abcdEFGH1234%2Babcd5678efgh",
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccess" + "Key=" + "k" * 44,
        "Instrumentation" + "Key=0f1e2d3c-1111-2222-3333-444455556666;IngestionEndpoint=https://x",
        "-----BEGIN RSA PRIVATE" + " KEY-----",
        "https://app.azurewebsites.net/api/jobs?co" + "de=" + "a1B2" * 10,
        "client_" + 'secret = "s3cr3t-value-here"',
    ]
    assert [len(find_secrets(sample)) for sample in samples] == [1] * len(samples)
    assert find_secrets(f"AccountKey={AZURITE_DEV_KEY};") == []  # the documented exception


def test_local_settings_are_ignored_by_git():
    """local.settings.json holds a developer's real values (func start reads it); it must never be committed."""
    ignored = subprocess.run(["git", "check-ignore", "-q", "local.settings.json"], cwd=ROOT).returncode == 0
    assert ignored, "add local.settings.json to .gitignore"
