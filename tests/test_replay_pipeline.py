"""PostgreSQL's harder modes recorded on a real server and replayed from mocks: psycopg 3 in
pipeline mode (executemany, and ``conn.pipeline()`` whose fetch sends a Flush and waits
before the Sync), and COPY FROM STDIN from psycopg 3 and psycopg 2. A changed statement in
the pipeline, or changed COPY rows, fail, and never hang."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import KPY, child_env, free_port
from tests.servers import PG_PASSWORD, Postgres, pg_bin

SERVICE = """
import io, json, os, psycopg, psycopg2
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO pipe (a) VALUES (%s)", [(1,), (2,), (3,)])
            with conn.pipeline():
                conn.execute("INSERT INTO pipe (a) VALUES (%s)", (4,))
                n = conn.execute("SELECT count(*) FROM pipe").fetchone()[0]
            with conn.cursor().copy("COPY pipe (a) FROM STDIN") as copy:
                for row in [(5,), (6,)]:
                    copy.write_row(row)
        old = psycopg2.connect(os.environ["DATABASE_URL"])
        old.cursor().copy_expert("COPY pipe (a) FROM STDIN", io.StringIO("7\\n8\\n"))
        old.commit()
        old.close()
        body = json.dumps({"n": n}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def kpy(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [*KPY, *args, "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    return subprocess.run(argv, env=child_env() | env, capture_output=True, text=True, timeout=120)


def test_pipeline_mode_replays(postgres: Postgres, tmp_path: Path) -> None:
    psql = [pg_bin("psql"), "-X", "-q", "-c"]
    pg_env = os.environ | postgres.env()
    subprocess.run([*psql, "DROP TABLE IF EXISTS pipe"], env=pg_env, check=True)
    subprocess.run([*psql, "CREATE TABLE pipe (a int)"], env=pg_env, check=True)
    service = tmp_path / "service.py"
    service.write_text(SERVICE)
    port = free_port()
    database = f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{postgres.port}/{postgres.database}"
    env = {"PORT": str(port), "DATABASE_URL": database}
    fetch = "import os, urllib.request as u; print(u.urlopen(os.environ['BASE_URL'] + '/').read())"
    traffic = shlex.join([sys.executable, "-c", fetch])
    command = shlex.join([sys.executable, str(service)])
    done = kpy(tmp_path, env, "record", "-c", command, "--port", str(port), "--traffic", traffic)
    assert done.returncode == 0, done.stderr
    assert "b'{\"n\": 4}'" in done.stdout + done.stderr

    done = kpy(tmp_path, env, "test", "-c", command)
    assert done.returncode == 0, done.stderr

    changed = tmp_path / "changed.py"
    changed.write_text(SERVICE.replace("SELECT count(*)", "SELECT count(*) + 0"))
    done = kpy(tmp_path, env, "test", "-c", shlex.join([sys.executable, str(changed)]))
    assert done.returncode == 1
    assert "matched no mock: INSERT INTO pipe (a) VALUES ($1); SELECT count(*) + 0" in done.stderr

    changed.write_text(SERVICE.replace("(5,), (6,)", "(5,), (60,)"))
    done = kpy(tmp_path, env, "test", "-c", shlex.join([sys.executable, str(changed)]))
    assert done.returncode == 1
    assert "matched no mock: COPY pipe (a) FROM STDIN" in done.stderr
    assert "+    60" in done.stderr  # the changed row, in the nearest mock's diff
