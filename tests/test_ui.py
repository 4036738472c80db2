"""``urban-safety ui`` as a user runs it: a real process that starts both UIs, answers HTTP, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from urban_safety.settings import Settings
from urban_safety.ui import plan

CLI = Path(sys.executable).parent / "urban-safety"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status


def test_plan_follows_the_configured_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.setenv("URBAN_SAFETY_OPTUNA_STORAGE", "postgresql://u@db.example/optuna")
    mlflow_ui, optuna_ui = plan(Settings(), mlflow_port=5001, optuna_port=8081)
    assert mlflow_ui.command is None and mlflow_ui.url == "http://tracking.example:5000"  # a server already
    assert "postgresql://u@db.example/optuna" in optuna_ui.command and optuna_ui.url.endswith(":8081")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow_ui, _ = plan(Settings(), mlflow_port=5001)
    assert f"sqlite:///{tmp_path}/mlflow.db" in mlflow_ui.command and mlflow_ui.url == "http://127.0.0.1:5001"


def test_ui_starts_both_and_stops_them(tmp_path):
    mlflow_port, optuna_port = _free_port(), _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "URBAN_SAFETY_OPTUNA_STORAGE": f"sqlite:///{tmp_path}/optuna.db", "COLUMNS": "200"}
    proc = subprocess.Popen([str(CLI), "ui", "--mlflow-port", str(mlflow_port), "--optuna-port", str(optuna_port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300  # two Python web apps starting on a busy 2-core machine
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"ui exited early: {''.join(lines)}"
            lines.append(line)
        out = "".join(lines)
        assert f"MLflow: http://127.0.0.1:{mlflow_port}" in out
        assert f"optuna-dashboard: http://127.0.0.1:{optuna_port}" in out
        assert _answers(f"http://127.0.0.1:{mlflow_port}/") == 200
        assert _answers(f"http://127.0.0.1:{mlflow_port}/ajax-api/2.0/mlflow/experiments/search?max_results=5") == 200
        assert _answers(f"http://127.0.0.1:{optuna_port}/dashboard/") == 200
        assert _answers(f"http://127.0.0.1:{optuna_port}/api/studies") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    for port in (mlflow_port, optuna_port):  # both UIs went with it
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
