"""The WSGI servers the benchmarks start (benchmarks/load.server_start, ``--server``):
gunicorn, as production runs, and granian, measured beside it. Each must serve the bare
views of ``benchmarks/ceiling_wsgi.py`` with the workers asked for, and stop as one."""

import http.client
import json
import tempfile
from pathlib import Path

import pytest

from benchmarks import load

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("server", load.SERVERS)
def test_each_benchmark_server_serves_the_bare_views_and_stops(server: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{server}-") as work:
        port = load.free_port()
        env = load.django_env(database="postgres://unused", public_url=f"http://127.0.0.1:{port}")
        env.pop("DJANGO_SETTINGS_MODULE")  # ceiling_wsgi configures its own settings
        started = load.server_start(
            port=port,
            env=env,
            log_dir=Path(work),
            workers=2,
            threads=2,
            app="benchmarks.ceiling_wsgi",
            ready_path="/answer_inbound",
            server=server,
        )
        pids = started.pids
        try:
            assert len(pids) == 3, f"the main process and 2 workers: {pids}\n{started.log_tail()}"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/answer_outbound")
            response = connection.getresponse()
            body = json.loads(response.read())
            connection.close()
            assert response.status == 200
            assert [action["action"] for action in body] == ["talk", "conversation"]
        finally:
            load.server_stop(started)
        assert started.process.poll() is not None
        assert [pid for pid in pids if load.process_alive(pid)] == [], "a worker outlived its server"


def test_an_unknown_server_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown server 'uwsgi'"):
        load.server_command("uwsgi", app="benchmarks.ceiling_wsgi", port=1, workers=1, threads=1)
