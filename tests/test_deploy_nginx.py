"""deploy/nginx.conf run by a real nginx, in front of two stand-ins for the two gunicorns
(deploy/whisper.service on :8000, deploy/whisper-answers.service on :8001), each of which
answers with its name and the headers it was given.

What it must do: send what a caller waits on (the answers, the fallback, and the events
that return an NCCO, which carry our signed parameters) to the answers' processes and
everything else to the events'; stamp each webhook with ``X-Request-Start`` whatever the
client sent (a forged stamp would shed callers: calls/webhooks/overload.py); redirect the
rest of plain HTTP and serve it over TLS. Skipped where nginx is not installed, unless
``REQUIRE_NGINX_TESTS`` is set (`.ci/run` installs Debian's nginx and sets it): then failed."""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_deploy_files import DEPLOY

NGINX = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
HOST = "whisper.example.com"


class _Named(BaseHTTPRequestHandler):
    """Answers any request with the server's name, the path and the headers the app reads."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps(
            {
                "server": self.server.name,  # type: ignore[attr-defined]
                "path": self.path,
                "x_request_start": self.headers.get("X-Request-Start"),
                "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stand_in(name: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Proxy:
    http_port: int
    https_port: int

    def request(self, method: str, path: str, *, tls: bool = False, headers: dict[str, str] | None = None) -> tuple:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.https_port, timeout=10, context=context
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            body = b"{}" if method == "POST" else None
            connection.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
            response = connection.getresponse()
            text = response.read()
            found = json.loads(text) if response.getheader("Content-Type") == "application/json" else {}
            return response.status, found, response.getheader("Location")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    import trustme

    if NGINX is None:
        missing = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("REQUIRE_NGINX_TESTS"):
            pytest.fail(f"{missing}, and REQUIRE_NGINX_TESTS is set")
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("nginx")
    events, answers = _stand_in("events"), _stand_in("answers")
    certificate = trustme.CA().issue_cert(HOST)
    certificate.cert_chain_pems[0].write_to_path(str(work / "fullchain.pem"))
    certificate.private_key_pem.write_to_path(str(work / "privkey.pem"))
    http_port, https_port = _free_port(), _free_port()
    site = (DEPLOY / "nginx.conf").read_text()
    for deployed, here in (
        ("127.0.0.1:8000", f"127.0.0.1:{events.server_address[1]}"),
        ("127.0.0.1:8001", f"127.0.0.1:{answers.server_address[1]}"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        (f"/etc/letsencrypt/live/{HOST}/", f"{work}/"),
    ):
        assert deployed in site, deployed  # the test follows the file: a change there fails here first
        site = site.replace(deployed, here)
    (work / "site.conf").write_text(site)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp_paths = "".join(f"    {kind}_temp_path {work}/{kind};\n" for kind in kinds)
    (work / "nginx.conf").write_text(
        f"daemon off;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp_paths}    include {work}/site.conf;\n}}\n"
    )
    command = [str(NGINX), "-p", str(work), "-c", str(work / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    assert checked.returncode == 0, checked.stderr
    # Its errors go to error.log; nothing reads a pipe, which could fill and stall it.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (work / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen within 10 s"
                time.sleep(0.05)
        yield Proxy(http_port=http_port, https_port=https_port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        events.shutdown()
        answers.shutdown()


# What Vonage sends, and which gunicorn must take it.
ROUTES = [
    ("GET", "/answer_inbound?uuid=caller-1&to=447700900001", "answers"),
    ("GET", "/answer_outbound?call=7&sig=abc&uuid=agent-1", "answers"),
    ("GET", "/answer_callback?callback=3&sig=abc", "answers"),
    ("POST", "/fallback", "answers"),
    ("POST", "/event?call=7&checkpoint=agent&sig=abc", "answers"),  # the notify after the greeting
    ("POST", "/event?call=7&attempt=2&sig=abc", "answers"),  # a connect's synchronous event
    ("POST", "/event", "events"),  # a plain status event
    ("POST", "/event/", "events"),
    ("GET", "/healthz", "events"),
]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize(("method", "path", "server"), ROUTES, ids=[path for _, path, _ in ROUTES])
def test_what_a_caller_waits_on_goes_to_the_answers_processes_and_the_rest_to_the_events(
    proxy: Proxy, method: str, path: str, server: str, tls: bool
) -> None:
    status, found, _ = proxy.request(method, path, tls=tls)

    assert status == 200
    assert (found["server"], found["path"]) == (server, path)
    assert found["x_forwarded_proto"] == ("https" if tls else "http")


@pytest.mark.parametrize("path", ["/answer_inbound?uuid=caller-1", "/event"])
def test_a_stamp_the_client_sent_is_replaced_by_the_time_the_request_arrived(proxy: Proxy, path: str) -> None:
    """The attack: stamps from an hour ago, to have every caller shed (connected without the
    whisper). nginx overwrites them with its own clock."""
    before = time.time()
    _, found, _ = proxy.request("POST" if path == "/event" else "GET", path, headers={"X-Request-Start": "t=1.0"})

    stamp = float(found["x_request_start"].removeprefix("t="))
    assert before - 1 <= stamp <= time.time() + 1


def test_the_admin_is_redirected_to_https_and_served_there_by_the_events_processes(proxy: Proxy) -> None:
    status, _, location = proxy.request("GET", "/admin/")
    assert (status, location) == (301, f"https://{HOST}/admin/")

    status, found, _ = proxy.request("GET", "/admin/", tls=True)
    assert (status, found["server"]) == (200, "events")
