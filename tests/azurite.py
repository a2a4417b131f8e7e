"""Start (or find) an Azurite for the test session.

If ``AZURITE_CONNECTION_STRING`` (or ``AZURITE_BLOB_URL``) is set, that Azurite is used.
Otherwise Azurite is started from ``.azurite/node_modules/.bin/azurite`` (``scripts/bootstrap.sh``
installs it) or ``azurite`` on PATH, on free ports, with a fresh data folder (Azurite slows down
as blobs pile up), and stopped at the end of the session.

The account below is Azurite's well-known, public development account.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jobs_core.storage_settings import StorageSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_AZURITE = REPO_ROOT / ".azurite" / "node_modules" / ".bin" / "azurite"

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT_S = 30.0
# Azurite 3.37 accepts this service version (it refuses the SDK's newer default).
API_VERSION = "2025-11-05"


class AzuriteUnavailable(RuntimeError):
    """Azurite could not be found or started."""


def connection_string(blob_endpoint: str, queue_endpoint: str | None = None) -> str:
    parts = [
        "DefaultEndpointsProtocol=http",
        f"AccountName={ACCOUNT_NAME}",
        f"AccountKey={ACCOUNT_KEY}",
        f"BlobEndpoint={blob_endpoint}",
    ]
    if queue_endpoint:
        parts.append(f"QueueEndpoint={queue_endpoint}")
    return ";".join(parts) + ";"


def _endpoint(conn_str: str, key: str) -> str | None:
    for part in conn_str.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == key.lower():
            return value.strip()
    return None


@dataclass
class Azurite:
    blob_endpoint: str
    queue_endpoint: str | None
    connection_string: str
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    owned: bool = field(default=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:  # the data folder is thrown away: no need to wait for a clean shutdown
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.owned and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def from_environment() -> Azurite | None:
    """The Azurite named by ``AZURITE_CONNECTION_STRING`` / ``AZURITE_BLOB_URL``, if any."""
    conn = os.environ.get("AZURITE_CONNECTION_STRING", "").strip()
    blob_url = os.environ.get("AZURITE_BLOB_URL", "").strip()
    if conn:
        blob = _endpoint(conn, "BlobEndpoint") or blob_url
        if not blob:
            raise AzuriteUnavailable("AZURITE_CONNECTION_STRING has no BlobEndpoint")
        return Azurite(blob, _endpoint(conn, "QueueEndpoint"), conn)
    if blob_url:
        blob_url = blob_url.rstrip("/")
        if not blob_url.endswith(ACCOUNT_NAME):
            blob_url = f"{blob_url}/{ACCOUNT_NAME}"
        return Azurite(blob_url, None, connection_string(blob_url))
    return None


def find_executable() -> str | None:
    if LOCAL_AZURITE.exists():
        return str(LOCAL_AZURITE)
    return shutil.which("azurite")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(*, log_dir: Path | None = None) -> Azurite:
    """Start a private Azurite; raise ``AzuriteUnavailable`` if it cannot run."""
    exe = find_executable()
    if exe is None:
        raise AzuriteUnavailable(
            f"Azurite is not installed ({LOCAL_AZURITE} is missing and 'azurite' is not on PATH);"
            " run scripts/bootstrap.sh"
        )
    blob_port, queue_port, table_port = _free_ports(3)
    data_dir = Path(tempfile.mkdtemp(prefix="azurite-test-"))
    log_path = (log_dir or data_dir) / f"azurite-{blob_port}.log"
    args = [
        exe,
        "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
        "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
        "--location", str(data_dir),
        "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    blob = f"http://127.0.0.1:{blob_port}/{ACCOUNT_NAME}"
    queue = f"http://127.0.0.1:{queue_port}/{ACCOUNT_NAME}"
    azurite = Azurite(
        blob, queue, connection_string(blob, queue), process, data_dir, log_path, owned=True
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-2000:]
            azurite.stop()
            raise AzuriteUnavailable(f"Azurite exited with code {process.returncode}: {output}")
        if _port_open(blob_port):
            return azurite
        time.sleep(0.1)
    azurite.stop()
    raise AzuriteUnavailable(f"Azurite did not open port {blob_port} in {START_TIMEOUT_S:.0f} s")


def unique_container(prefix: str = "t") -> str:
    """A new container name (one per test keeps tests independent)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def settings(azurite: Azurite, container: str) -> StorageSettings:
    """Store settings for ``container`` on this Azurite, with a service version it accepts."""
    return StorageSettings(
        container=container, connection_string=azurite.connection_string, api_version=API_VERSION
    )
