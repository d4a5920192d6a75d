"""Nobody gets in uninvited: `reviewflow up` refuses other interfaces without credentials, and with them both
servers answer 401 to a request without credentials and serve one with them (on 127.0.0.1, auth switched on)."""

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tasks.core.servers import free_port
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e
MLFLOW_PASSWORD, PREFECT_AUTH = "s3cret-mlflow-Pw", "team:s3cret-prefect-Pw"
CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD, "PREFECT_API_AUTH_STRING": PREFECT_AUTH}


def test_up_refuses_another_interface_without_credentials(workdir):
    result = run_cli(["up", "--set", "servers.host=0.0.0.0", "--set", f"servers.mlflow_port={free_port()}"], cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("reviewflow: error: servers.host 0.0.0.0 lets other machines reach both servers")
    assert "Traceback" not in result.stderr and not (workdir / "data").exists()  # refused before anything started


def test_up_refuses_half_the_credentials(workdir):
    env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD}
    result = run_cli(["up", "--set", f"servers.mlflow_port={free_port()}"], env=env, cwd=workdir)
    assert result.returncode == 2 and "authentication needs both servers' credentials" in result.stderr
    assert MLFLOW_PASSWORD not in result.stderr + result.stdout


def test_with_credentials_both_servers_refuse_strangers_and_serve_the_team(tmp_path):
    mlflow_port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env.update(CREDENTIALS, PREFECT_HOME=str(tmp_path / "client-home"))
    code = (
        "import flows, sys; from flows.stack import up; from tasks.core.config import Config; "
        f"sys.exit(up(Config(), '127.0.0.1', {mlflow_port}, {prefect_port}))"
    )
    output = tmp_path / "up.out"
    with open(output, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                                   start_new_session=True)
    mlflow, prefect = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}/api"
    try:
        deadline = time.monotonic() + 600
        while "Prefect UI" not in output.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert "Prefect UI" in output.read_text(), output.read_text()[-3000:]

        search = f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=5"
        assert _status(search) == 401
        assert _status(search, "admin:wrong") == 401
        assert _status(search, f"admin:{MLFLOW_PASSWORD}") == 200
        flows = f"{prefect}/flows/filter"
        assert _status(flows, method="POST") == 401
        assert _status(flows, "team:wrong", method="POST") == 401
        assert _status(flows, PREFECT_AUTH, method="POST") == 200
        assert _status(f"{prefect}/deployments/name/score/score", PREFECT_AUTH) == 200  # served, through the auth

        # The CLI passes the credentials from the environment; without them, one line.
        listed = run_cli(["models"], env={"MLFLOW_TRACKING_URI": mlflow, **CREDENTIALS}, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr[-2000:]
        stranger = run_cli(["models"], env={"MLFLOW_TRACKING_URI": mlflow}, cwd=tmp_path)
        assert stranger.returncode == 2 and len(stranger.stderr.strip().splitlines()) == 1, stranger.stderr[-2000:]
        assert "401" in stranger.stderr or "nauthorized" in stranger.stderr or "credentials" in stranger.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    logs = [output, *(tmp_path / "data").rglob("*.log")]
    for log in logs:
        text = log.read_text(errors="replace")
        assert MLFLOW_PASSWORD not in text and PREFECT_AUTH not in text, log
    for config in (tmp_path / "data").rglob("*.ini"):
        assert MLFLOW_PASSWORD not in config.read_text(), config  # the password stays in the environment


def _status(url: str, auth: str | None = None, method: str = "GET") -> int:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
