"""Start a private Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the bench and the tests.

Each :class:`OrthancServer` runs its own ``Orthanc`` process with a JSON configuration generated in
a temporary directory: SQLite index and storage there, HTTP and DICOM on free ports, TCP_NODELAY on
(HTTP: the ``TcpNoDelay`` option; DICOM: DCMTK's ``TCP_NODELAY=1`` environment variable, which the
dcmtk tools talking to it need too — see :data:`DCMTK_ENV`), the DICOMweb plugin loaded
(``/dicom-web/`` and WADO-URI ``/wado``), no job persistence.
It never touches the system's ``/etc/orthanc`` or ``/var/lib/orthanc``.

Orthanc 1.10 has no bind-address option: it listens on every interface, with
``RemoteAccessAllowed`` false so that only 127.0.0.1 is answered over HTTP.

Usage::

    from bench.orthanc import OrthancServer, orthanc_missing

    reason = orthanc_missing()        # None when Orthanc and the DICOMweb plugin are installed
    with OrthancServer(tmp_path) as o:
        o.http_url                    # "http://127.0.0.1:<port>"
        o.dicom_port, o.aet           # C-STORE / C-FIND / C-MOVE SCP
        o.get_json("/system")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
#: DCMTK (Orthanc's DICOM layer, and storescu/findscu/movescu) sets TCP_NODELAY on its DICOM sockets
#: only when this variable says so; with Nagle on, C-STORE stalls at ~12 instances/s on loopback.
#: The "TcpNoDelay" configuration option is for Orthanc's HTTP server.
DCMTK_ENV = {"TCP_NODELAY": "1"}


def dicomweb_plugin() -> Path | None:
    for d in PLUGIN_DIRS:
        p = Path(d) / DICOMWEB_PLUGIN
        if p.exists():
            return p
    return None


def orthanc_missing(*, dicomweb: bool = True) -> str | None:
    """Why an Orthanc cannot be started here (``None`` when it can)."""
    if not os.access(ORTHANC, os.X_OK):
        return "Orthanc is not installed (Debian package orthanc)"
    if dicomweb and dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """One private Orthanc process; a context manager (``start()`` / ``stop()`` also work).

    ``modalities`` are Orthanc ``DicomModalities`` entries (``{"HUREN": ["HUREN", "127.0.0.1", 11112]}``)
    for C-MOVE destinations; ``users`` enables HTTP basic authentication with these accounts;
    ``extra`` is merged into the configuration last.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aet: str = "ORTHANC",
        dicomweb: bool = True,
        modalities: dict[str, list[Any]] | None = None,
        users: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.aet = aet
        self.dicomweb = dicomweb
        self.modalities = modalities or {}
        self.users = users or {}
        self.extra = extra or {}
        self.http_port = 0
        self.dicom_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "orthanc.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "Name": "huren-bench-orthanc",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "Plugins": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,
            "HttpDescribeErrors": True,
            "KeepAlive": True,
            "TcpNoDelay": True,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "DicomModalities": self.modalities,
            "DefaultEncoding": "Utf8",
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "StableAge": 2,
        }
        if self.dicomweb:
            plugin = dicomweb_plugin()
            if plugin is None:
                raise RuntimeError(orthanc_missing() or "no DICOMweb plugin")
            cfg["Plugins"] = [str(plugin)]
            cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado",
                               "Host": f"127.0.0.1:{self.http_port}", "Ssl": False}
        cfg.update(self.extra)
        return cfg

    def start(self, timeout: float = 30.0) -> OrthancServer:
        reason = orthanc_missing(dicomweb=self.dicomweb)
        if reason:
            raise RuntimeError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # a free port may be taken between choosing and binding it
            self.http_port, self.dicom_port = free_port(), free_port()
            cfg_path = self.workdir / "orthanc.json"
            cfg_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [ORTHANC, "--no-jobs", str(cfg_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=os.environ | DCMTK_ENV,
            )
            log.close()
            if self._wait_ready(timeout):
                return self
            self.stop()
            if attempt == 2:
                break
        raise RuntimeError("Orthanc did not start; log:\n" + self.log_path.read_text(errors="replace")[-3000:])

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.get_json("/system")
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def headers(self) -> dict[str, str]:
        if not self.users:
            return {}
        user, password = next(iter(self.users.items()))
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 10.0) -> bytes:
        req = urllib.request.Request(self.http_url + path, data=body, method=method, headers=self.headers())
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data: bytes = r.read()
            return data

    def get_json(self, path: str) -> Any:
        return json.loads(self.request("GET", path, timeout=2.0))

    def upload(self, dicom: bytes) -> Any:
        """POST /instances: store one Part-10 file over REST (quicker than C-STORE for test fixtures)."""
        return json.loads(self.request("POST", "/instances", dicom))

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
