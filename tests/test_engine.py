"""Connecting to the engine, describing it, and the messages when none answers."""
import re
import subprocess
import sys

import pytest

from helpers.course import engine
from helpers.course import setup


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
    from helpers.course import own_engine
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setattr(setup, "can_install", lambda: False)  # as on a laptop without root
    monkeypatch.setattr(own_engine, "read_state", lambda: None)
    monkeypatch.setattr(engine, "DEFAULT_SOCKET", str(tmp_path / "none.sock"))
    assert setup.main([]) == 2
    err = capsys.readouterr().err
    assert "No Docker Engine answered" in err and "Traceback" not in err


def course_engine():
    from helpers.course import own_engine
    state = own_engine.read_state()
    if state is None:
        pytest.skip("the engine is the learner's own, not the course's")
    return state


def test_course_engine_is_current_private_and_sealed(client):
    """The tests' engine is the course's own: its own prefix, socket and data-root; it cannot
    pull (the dead proxy refuses at once) and its containers' traffic stays on this machine."""
    import time
    import docker
    from helpers.course import own_engine
    state = course_engine()
    assert state.sealed
    info = client.info()
    assert info["DockerRootDir"] == str(own_engine.paths(state.instance)["data_root"])
    assert client.api.base_url.endswith("docker.sock") or "DOCKER_HOST" in __import__("os").environ
    expected = {"test-26": "26.", "test-26-containerd": "26.", "test-20.10": "20.10."}
    assert client.version()["Version"].startswith(expected.get(state.instance, ""))
    store = "io.containerd.snapshotter" in str(info.get("DriverStatus"))
    assert store == (state.instance == "test-26-containerd")
    started = time.monotonic()
    with pytest.raises(docker.errors.APIError) as err:
        client.images.pull("busybox", tag="latest")
    assert time.monotonic() - started < 10
    assert "proxyconnect" in str(err.value) or "connection refused" in str(err.value)
    for table, chain, *spec in state.rules:
        assert "-i" in spec, "the egress rule must match the engine's own bridges"
        assert subprocess.run(["iptables", "-t", table, "-C", chain, *spec],
                              capture_output=True).returncode == 0


@pytest.mark.engine   # the course's own engine, found through its state file
def test_course_engine_has_compose_v2_and_buildkit_in_its_cli():
    from helpers.course import own_engine
    state = course_engine()
    import os
    env = {**os.environ, **state.env()}
    compose = subprocess.run(["docker", "compose", "version"], env=env, capture_output=True,
                             text=True)
    assert compose.returncode == 0 and re.search(r"version v?2\.", compose.stdout)
    buildx = subprocess.run(["docker", "buildx", "version"], env=env, capture_output=True,
                            text=True)
    assert buildx.returncode == 0 and "buildx" in buildx.stdout
    # ~/.docker is never written: the CLI configuration is the course's own.
    assert env["DOCKER_CONFIG"].startswith(str(own_engine.CACHE))


def test_no_compose_v2_says_what_to_install(tmp_path, monkeypatch):
    """A CLI without the compose plugin (a configuration that names no plugin folder)."""
    import shutil
    which = shutil.which
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "docker-compose"
                        else which(name))
    assert engine.compose_available() == ""
    from helpers.labs.preflight import compose_line
    line = compose_line()
    assert line.ok is False and "Compose v2" in line.text and "docker-compose-plugin" in line.fix


@pytest.mark.engine   # the course's own engine, found through its state file
def test_a_second_engine_never_starts_beside_one_that_answers(tmp_path, monkeypatch):
    """A socket that answers and is not the course's: start refuses, and says why."""
    import os
    from helpers.course import own_engine
    state = course_engine()
    other = tmp_path / "yours.sock"
    os.symlink(state.socket, other)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{other}")
    # Whatever start decides, it must never stop the engine the other tests are using.
    monkeypatch.setattr(own_engine, "stop", lambda *a, **k: pytest.fail("start stopped the engine"))
    with pytest.raises(own_engine.EngineError) as err:
        own_engine.start("26")
    assert "already answers" in str(err.value)
    assert own_engine.read_state().pid == state.pid   # the running engine was left alone


@pytest.mark.engine   # the course's own engine, found through its state file
def test_engine_command_status_and_env():
    course_engine()
    done = subprocess.run([sys.executable, "-m", "helpers.course.own_engine", "status"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "runs since" in done.stdout


def test_helpers_cli_without_engine_prints_one_line(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "helpers.course.images", "list"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "No Docker Engine answered" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- the seam (docker-py's private names)

def test_docker_py_is_pinned_below_the_next_major():
    import tomllib
    from pathlib import Path
    deps = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "docker>=7,<8" in deps["project"]["dependencies"]


def test_seam_save_images_stream_is_a_docker_save_archive(client, kit):
    import io
    import json
    import tarfile
    data = b"".join(engine.save_images_stream(client, [kit["busybox"]], chunk_size=1 << 16))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = set(tar.getnames())
    assert [kit["busybox"]] in [m["RepoTags"] for m in manifest]
    assert all(layer in names for m in manifest for layer in m["Layers"])
    import docker
    with pytest.raises(docker.errors.APIError):   # the engine's refusal comes through
        b"".join(engine.save_images_stream(client, ["course99.invalid/no-such-image:0"]))


def test_seam_container_create_args_as_the_sdk_converts_them(client, kit, lesson):
    args = engine.container_create_args(client, kit["busybox"], ["sh", "-c", "true"],
                                        labels=lesson.labels, mem_limit="64m",
                                        network_mode="none")
    created = client.api.create_container(**args)
    try:
        attrs = client.api.inspect_container(created["Id"])
        assert attrs["Config"]["Labels"]["dockercourse.notebook"] == lesson.nn
        assert attrs["Config"]["Cmd"] == ["sh", "-c", "true"]
        assert attrs["HostConfig"]["Memory"] == 64 * 2**20
        assert attrs["HostConfig"]["NetworkMode"] == "none"
    finally:
        client.api.remove_container(created["Id"], force=True)
