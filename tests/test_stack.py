"""The stack of lessons 04-06 on the real engine: the redis stand-in, the web app's visit
counter, and the Compose files (data/compose), all offline."""
import re
import time
import urllib.error
import urllib.request

import pytest

from helpers.course.images import KIT_LABEL, catalogue
from helpers.course.labels import LABEL
from helpers.course.lesson import Lesson
from helpers.course.ports import fetch, free_port
from helpers.course.settings import DATA

REDIS = catalogue()["redis"]
FACTS = REDIS.matches
WEBAPP_TAG = "course04.invalid/stack-webapp"


@pytest.fixture(scope="module")
def lesson04(client, kit):
    lesson04 = Lesson(4)
    yield lesson04
    lesson04.clean_up()


@pytest.fixture(scope="module")
def webapp(lesson04):
    image, _ = lesson04.client.images.build(path=str(DATA / "webapp"), tag=WEBAPP_TAG,
                                          labels=lesson04.labels, rm=True)
    return image


@pytest.fixture
def network(lesson04):
    net = lesson04.client.networks.create(f"course04-stacktest-{time.monotonic_ns()}",
                                        labels=lesson04.labels)
    yield net
    for c in lesson04.client.containers.list(all=True, filters={"network": net.id}):
        c.remove(force=True, v=True)
    net.remove()


def run_redis(lesson04, network, *command):
    return lesson04.client.containers.run(REDIS.ref, list(command) or None, detach=True,
                                        labels=lesson04.labels, network=network.name,
                                        name=f"course04-redis-{time.monotonic_ns()}")


def wait_for_log(container, text, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        logs = container.logs().decode(errors="replace")
        if text in logs:
            return logs
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the logs:\n{logs[-800:]}")


def cli(lesson04, network, *args) -> str:
    """`redis-cli` in a second container on the same network (as another service would)."""
    return lesson04.client.containers.run(REDIS.ref, ["redis-cli", *args], remove=True,
                                        labels=lesson04.labels,
                                        network=network.name).decode().strip()


def get(url, timeout=3.0):
    """(status, body) of a GET, 503s included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# ------------------------------------------------------------ the redis stand-in

def test_catalogue_cites_the_official_image():
    assert REDIS.ref == "redis:7-alpine"
    assert "docker-library/redis" in FACTS["source"] and "alpine/Dockerfile" in FACTS["source"]
    assert not REDIS.optional   # `./course` set-up makes it for every learner


def test_redis_image_config_matches_the_official_one(client, kit):
    image = client.images.get(REDIS.ref)
    config = image.attrs["Config"]
    assert list(config["Volumes"]) == [FACTS["volume"]]
    assert config["WorkingDir"] == FACTS["workdir"]
    assert config["Cmd"] == FACTS["cmd"]
    assert f"{FACTS['port']}/tcp" in config["ExposedPorts"]
    labels = image.labels or {}
    assert labels[KIT_LABEL] == "redis" and labels[f"{KIT_LABEL}.local-build"] == "true"
    assert LABEL not in labels, "a kit image must not carry a lesson04's label"


def test_redis_cli_is_there_at_the_same_major_version(lesson04, kit):
    out = lesson04.client.containers.run(REDIS.ref, ["redis-cli", "--version"], remove=True,
                                       labels=lesson04.labels).decode()
    assert re.match(rf"redis-cli {FACTS['major_version']}\.", out), out


def test_redis_runs_as_redis_and_writes_its_aof_under_data(lesson04, network):
    server = run_redis(lesson04, network, "redis-server", "--appendonly", "yes")
    wait_for_log(server, "Ready to accept connections")
    uid = server.exec_run(["sh", "-c", "awk '/^Uid:/ {print $2}' /proc/1/status"]).output
    assert int(uid) == FACTS["uid"]
    assert server.exec_run(["id", "-un", str(FACTS["uid"])]).output.decode().strip() == \
        FACTS["user"]
    # `VOLUME /data` gave the container an anonymous volume there
    server.reload()
    mounts = {m["Destination"]: m for m in server.attrs["Mounts"]}
    assert mounts[FACTS["volume"]]["Type"] == "volume"
    # another container reaches it over the network: protected mode is off, as in the official
    assert cli(lesson04, network, "-h", server.name, "INCR", "hits") == "1"
    assert cli(lesson04, network, "-h", server.name, "CONFIG", "GET", "protected-mode").split() \
        == ["protected-mode", FACTS["protected_mode"]]
    files = server.exec_run(["sh", "-c", "ls /data/appendonlydir"]).output.decode().split()
    assert any(f.endswith(".incr.aof") for f in files), files
    aof = server.exec_run(["sh", "-c", "cat /data/appendonlydir/*.incr.aof"]).output.decode()
    assert "INCR" in aof.upper() or "incrby" in aof.lower() or "hits" in aof, aof
    owner = server.exec_run(["stat", "-c", "%U", "/data/appendonlydir"]).output.decode().strip()
    assert owner == FACTS["user"]


def test_redis_without_appendonly_writes_no_aof(lesson04, network):
    server = run_redis(lesson04, network)
    wait_for_log(server, "Ready to accept connections")
    assert cli(lesson04, network, "-h", server.name, "INCR", "hits") == "1"
    assert server.exec_run(["ls", "/data/appendonlydir"]).exit_code != 0


# ------------------------------------------------------------ the web app, with and without Redis

def run_web(lesson04, webapp, network, **env):
    port = free_port(41000, quiet=True)
    web = lesson04.client.containers.run(webapp.id, detach=True, labels=lesson04.labels,
                                       network=network.name, environment=env,
                                       ports={"8080/tcp": ("127.0.0.1", port)})
    fetch(f"http://127.0.0.1:{port}/health", wait_seconds=15)
    return web, f"http://127.0.0.1:{port}"


def test_webapp_without_redis_host_is_unchanged(lesson04, webapp, network):
    web, url = run_web(lesson04, webapp, network)
    page = fetch(url + "/")
    lines = page.splitlines()
    assert lines[0] == "Hello from a container!"
    assert [l.split(":")[0] for l in lines[1:]] == ["hostname", "user",
                                                    "port inside the container"]
    assert "visits" not in page
    assert get(url + "/health") == (200, "ok\n")
    assert web.logs().decode().splitlines()[0] == "listening on 0.0.0.0:8080"
    assert "Redis" not in web.logs().decode()


def test_webapp_counts_visits_in_redis_and_health_asks_it(lesson04, webapp, network):
    redis = run_redis(lesson04, network)
    wait_for_log(redis, "Ready to accept connections")
    web, url = run_web(lesson04, webapp, network, REDIS_HOST=redis.name)
    assert get(url + "/health") == (200, "ok\n")
    first, second = fetch(url + "/"), fetch(url + "/")
    assert "visits: 1" in first.splitlines() and "visits: 2" in second.splitlines()
    assert first.splitlines()[0] == "Hello from a container!"
    assert cli(lesson04, network, "-h", redis.name, "GET", "hits") == "2"
    assert f"counting visits in Redis at {redis.name}:6379" in web.logs().decode()

    redis.stop(timeout=2)
    # A stopped container's name is asked of the resolvers beyond the engine, which a sealed
    # engine cannot reach: the look-up may take the resolver's own time-out before the 503.
    status, body = get(url + "/health", timeout=30)
    assert status == 503 and f"Redis at {redis.name}:6379 unreachable" in body, body
    status, body = get(url + "/", timeout=30)
    assert status == 503 and "cannot count this visit" in body, body


# ------------------------------------------------------------ the Compose files

@pytest.mark.parametrize("nn", ["05", "06"])
def test_lesson_folders_name_the_project_and_label_everything(client, nn):
    from helpers.course.compose import whales   # the course's docker CLI with its compose plugin
    config = whales([DATA / "compose" / nn / "compose.yaml"]).compose.config(return_json=True)
    assert config["name"] == f"course{nn}"
    for service in config["services"].values():
        assert service["labels"][LABEL] == nn
        assert service["pull_policy"] in ("never", "build"), "nothing may be pulled"
    assert config["volumes"]["redis-data"]["labels"][LABEL] == nn
    assert config["networks"]["default"]["labels"][LABEL] == nn
    web = config["services"]["web"]
    assert web["build"]["labels"][LABEL] == nn and web["image"] == f"course{nn}.invalid/webapp"
    assert web["environment"]["REDIS_HOST"] == "redis"
    assert all(p["host_ip"] == "127.0.0.1" for p in web["ports"])


def test_stack_runs_offline_counts_and_keeps_the_count_in_its_volume(lesson04, monkeypatch):
    from helpers.course.compose import whales
    port = free_port(41100, quiet=True)
    monkeypatch.setenv("DOCKERCOURSE_NOTEBOOK", "04")
    monkeypatch.setenv("WEB_PORT", str(port))
    project = lesson04.record_project("course04-stacktest")
    stack = whales([DATA / "compose" / "stack.yaml"], project)
    since = int(time.time()) - 1
    stack.compose.up(detach=True, quiet=True)
    lesson04.record(lesson04.client.images.get("course04.invalid/webapp"),
                    tags=["course04.invalid/webapp:latest"])   # as the engine lists the tag
    url = f"http://127.0.0.1:{port}/"
    assert "visits: 1" in fetch(url, wait_seconds=15).splitlines()
    assert "visits: 2" in fetch(url).splitlines()

    client = lesson04.client
    mine = {"label": f"com.docker.compose.project={project}"}
    containers = client.containers.list(filters=mine)
    assert {c.labels["com.docker.compose.service"] for c in containers} == {"web", "redis"}
    assert all(c.labels[LABEL] == "04" for c in containers)
    web = next(c for c in containers if c.labels["com.docker.compose.service"] == "web")
    assert web.ports["8080/tcp"][0]["HostIp"] == "127.0.0.1"
    volume = client.volumes.get(f"{project}_redis-data")
    assert volume.attrs["Labels"][LABEL] == "04"
    network = client.networks.get(f"{project}_default")
    assert network.attrs["Labels"][LABEL] == "04"

    # the count lives in the named volume: a new redis container carries on from it
    stack.compose.rm(["redis"], stop=True)
    stack.compose.up(["redis"], detach=True, quiet=True)
    assert "visits: 3" in fetch(url, wait_seconds=10).splitlines()

    pulls = [e for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                      filters={"type": "image"}) if e.get("Action") == "pull"]
    assert pulls == []
    stack.compose.down(volumes=True, remove_orphans=True)
    assert not client.containers.list(all=True, filters=mine)
