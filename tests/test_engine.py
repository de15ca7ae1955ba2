"""Connecting to the engine, describing it, and the messages when none answers."""
import subprocess
import sys

import pytest

from helpers import engine, setup


def test_connect_and_describe(client):
    info = engine.describe(client)
    assert info.engine_version == client.version()["Version"]
    assert float(info.api_version) >= 1.41
    assert info.os_type == "linux"
    assert info.architecture in ("x86_64", "aarch64")
    assert info.cpus >= 1 and info.memory_gib > 0
    assert info.compose in ("v1", "v2")
    assert "engine_version" in str(info)


def test_unreachable_socket_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(engine.EngineUnavailable) as err:
        engine.connect(timeout=2)
    text = str(err.value)
    assert f"No Docker Engine answered at unix://{tmp_path}/no-engine.sock" in text
    assert "DOCKER_HOST is set" in text
    assert "systemctl start docker" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("system,needle", [
    ("Darwin", "Allow the default Docker socket"),
    ("Windows", "Start Docker Desktop"),
    ("Linux", "sudo systemctl start docker"),
])
def test_advice_per_system(monkeypatch, system, needle):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert needle in engine.advice("Connection refused", system=system)


def test_permission_denied_points_to_docker_group():
    # As root the real socket never refuses, so this error path is reached with its text.
    text = engine.advice("PermissionError(13, 'Permission denied')", system="Linux")
    assert "usermod -aG docker" in text


def test_setup_without_engine_exits_nonzero_with_advice(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setattr(setup, "can_install", lambda: False)  # as on a laptop without root
    assert setup.main([]) == 2
    err = capsys.readouterr().err
    assert "No Docker Engine answered" in err and "Traceback" not in err


def test_engine_started_by_the_course_is_sealed(client):
    """The engine the tests use cannot pull: the dead proxy refuses at once."""
    info = client.info()
    if info.get("HttpsProxy") != setup.DEAD_PROXY["HTTPS_PROXY"]:
        pytest.skip("this engine was not started by the course")
    import time
    import docker
    started = time.monotonic()
    with pytest.raises(docker.errors.APIError) as err:
        client.images.pull("busybox", tag="latest")
    assert time.monotonic() - started < 10
    assert "proxyconnect" in str(err.value) or "connection refused" in str(err.value)


def test_egress_rule_in_place():
    if not setup.can_install():
        pytest.skip("only where the course manages the engine (Linux, root)")
    for rule in setup.EGRESS_RULES:
        assert subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode == 0


def test_helpers_cli_without_engine_prints_one_line(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "helpers.images", "list"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "No Docker Engine answered" in done.stderr and "Traceback" not in done.stderr
