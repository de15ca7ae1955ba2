"""Health checks on the real engine: the states, a real hang, the timeline panel, exercise 06."""
import pytest

from helpers.course.compose import PROJECT, Stack
from helpers.exercises import get, nb06, run_check
from helpers.course.health import (DEFAULTS, check_settings, freeze, frozen, health, thaw, wait_for, why_unhealthy)
from helpers.labs.health_panel import HealthPanel
from helpers.course.lesson import Lesson
from helpers.course.ports import free_port
from helpers.course.settings import DATA

PROJECT_NAME = "course06"
COMPOSE = DATA / "compose"
HEALTHY_STACK = [COMPOSE / "06" / "compose.yaml", COMPOSE / "06-health.yml"]
REDIS = "redis:7-alpine"


@pytest.fixture
def lesson06(client, kit, monkeypatch):
    monkeypatch.setenv("WEB_PORT", str(free_port(40650, quiet=True)))
    lesson06 = Lesson(6)
    yield lesson06
    lesson06.clean_up()


def leftovers(client):
    f = {"label": f"{PROJECT}={PROJECT_NAME}"}
    return ([c.name for c in client.containers.list(all=True, filters=f)] +
            [n.name for n in client.networks.list(filters=f)] +
            [v.name for v in client.volumes.list(filters=f)])


def test_a_hung_redis_still_runs_and_fails_its_check(client, lesson06):
    """SIGSTOP makes `redis-cli ping` fail while the container stays running; SIGCONT heals."""
    redis = lesson06.client.containers.run(
        REDIS, detach=True, labels=lesson06.labels,
        healthcheck={"test": ["CMD-SHELL", "redis-cli ping | grep -q PONG"],
                     "interval": 500_000_000, "timeout": 1_000_000_000, "retries": 2})
    try:
        assert wait_for(redis, "healthy", 15)[0] == "healthy"
        freeze(redis)
        assert frozen(redis)
        redis.reload()
        assert redis.status == "running"
        ping = redis.exec_run(["timeout", "2", "redis-cli", "ping"])
        assert ping.exit_code != 0 and b"PONG" not in ping.output
        status, _ = wait_for(redis, "unhealthy", 15)
        assert status == "unhealthy"
        assert "failed 2 time(s) in a row" in why_unhealthy(redis)
        assert redis.attrs["RestartCount"] == 0              # the engine only reports it
        thaw(redis)
        assert not frozen(redis)
        assert wait_for(redis, "healthy", 10)[0] == "healthy"
        assert redis.exec_run(["redis-cli", "ping"]).output.strip() == b"PONG"
    finally:
        thaw(redis)
        redis.remove(force=True, v=True)


def test_a_healthcheck_without_settings_gets_the_engines_defaults(client, lesson06):
    box = lesson06.client.containers.create("busybox:1.35", ["sleep", "60"],
                                            labels=lesson06.labels,
                                            healthcheck={"test": ["CMD", "true"]})
    plain = lesson06.client.containers.create("busybox:1.35", "true", labels=lesson06.labels)
    try:
        settings = check_settings(box)
        assert settings["interval_s"] == DEFAULTS["interval_s"] == 30
        assert settings["timeout_s"] == 30 and settings["retries"] == 3
        assert check_settings(plain) == {}
    finally:
        box.remove(force=True)
        plain.remove(force=True)


def test_a_missing_check_command_is_named(client, lesson06):
    box = lesson06.client.containers.run(
        REDIS, detach=True, labels=lesson06.labels,
        healthcheck={"test": ["CMD", "curl", "-f", "http://localhost/"],
                     "interval": 300_000_000, "retries": 1})
    try:
        assert wait_for(box, "unhealthy", 10)[0] == "unhealthy"
        text = why_unhealthy(box)
        assert "runs `curl -f http://localhost/`, but `curl` does not exist in its image" in text
        assert REDIS in text
        assert health(box)["Log"][-1]["ExitCode"] != 0
    finally:
        box.remove(force=True, v=True)


# ---------------------------------------------------------------- the timeline panel

def test_the_timeline_shows_web_waiting_and_redis_breaking_and_healing(client, lesson06):
    panel = HealthPanel(Stack(HEALTHY_STACK, PROJECT_NAME, lesson=lesson06), live_seconds=0)
    try:
        panel.buttons["up"].click()
        assert "up and healthy" in panel.status.value, panel.status.value
        panel.buttons["toggle"].click()
        assert panel.buttons["toggle"].description == "Heal redis"
        panel.wait_for("redis", "unhealthy", 20)
        assert panel.stack.containers("redis")[0].status == "running"
        panel.buttons["toggle"].click()
        panel.wait_for("redis", "healthy", 20)
        panel.wait_for("web", "healthy", 20)
        panel.refresh()
        timeline = panel.timeline
        redis_states = timeline.states("redis")
        assert redis_states[:3] == ["waiting", "starting", "healthy"]
        assert redis_states[3:5] == ["unhealthy", "healthy"]
        # web waited (created, not started) until Redis was healthy: service_healthy
        redis_row = next(r for r in timeline.rows.values() if r.service == "redis")
        web_row = next(r for r in timeline.rows.values() if r.service == "web")
        redis_healthy = next(c.t for c in redis_row.changes if c.state == "healthy")
        web_started = next(c.t for c in web_row.changes if c.state == "starting")
        assert web_row.changes[0].state == "waiting" and web_started >= redis_healthy - 0.1
        assert [text for _, text in timeline.marks][1:] == ["redis hangs (SIGSTOP)",
                                                            "redis heals (SIGCONT)"]
        assert bytes(panel.picture.value).startswith(b"\x89PNG")
        assert "redis-cli ping | grep -q PONG" in panel.table.value
    finally:
        panel.buttons["down"].click()
    assert "is down" in panel.status.value
    assert leftovers(client) == []
    assert timeline.states("redis")[-1] in ("exited", "removed")


def test_the_panel_names_a_healthcheck_command_that_does_not_exist(client, lesson06):
    files = HEALTHY_STACK + [COMPOSE / "06-badcheck.yml"]
    panel = HealthPanel(Stack(files, PROJECT_NAME, lesson=lesson06), live_seconds=0)
    panel.buttons["up"].click()
    text = panel.status.value
    panel.close()
    assert "`curl` does not exist in its image (redis:7-alpine)" in text, text
    assert "nothing is left running" in text
    assert leftovers(client) == []


def test_the_panel_says_to_press_up_before_breaking(client, lesson06):
    panel = HealthPanel(Stack(HEALTHY_STACK, PROJECT_NAME, lesson=lesson06), live_seconds=0)
    panel.buttons["toggle"].click()
    assert "press Up first" in panel.status.value
    assert leftovers(client) == []


# ---------------------------------------------------------------- exercise 06

@pytest.fixture
def exercise06(lesson06, client):
    ex = get("06.healthcheck")
    ex.reset(client)
    yield ex
    ex.reset(client)


def _start_with(block, lesson06):
    target = nb06.prepare(overwrite=True)
    if block:
        target.write_text(nb06.with_healthcheck(target.read_text(), block))
    nb06.stack(lesson=lesson06).up(wait=False)


def _check(test, interval="1s"):
    return (f'    healthcheck:\n      test: {test}\n      interval: {interval}\n'
            f'      timeout: 1s\n      retries: 2\n')


def test_exercise_06_rejects_a_redis_without_healthcheck(client, lesson06, exercise06):
    assert not run_check("06.healthcheck", client).passed          # nothing runs
    _start_with("", lesson06)
    result = run_check("06.healthcheck", client)
    assert not result.passed and "redis has no healthcheck" in str(result)


def test_exercise_06_rejects_true(client, lesson06, exercise06):
    _start_with(_check('["CMD", "true"]'), lesson06)
    result = run_check("06.healthcheck", client)
    assert not result.passed and "`true` always succeeds" in str(result)


def test_exercise_06_rejects_a_check_that_does_not_ask_redis(client, lesson06, exercise06):
    _start_with(_check('["CMD", "redis-server", "--version"]'), lesson06)
    result = run_check("06.healthcheck", client)
    assert not result.passed
    assert "does not ask the Redis server" in str(result), str(result)
    container = nb06.stack(lesson=lesson06).containers("redis")[0]
    assert not frozen(container)                                  # the Check healed it


def test_exercise_06_rejects_a_long_interval_and_says_why(client, lesson06, exercise06):
    _start_with(_check('["CMD-SHELL", "redis-cli ping | grep -q PONG"]', "10s"), lesson06)
    result = run_check("06.healthcheck", client)
    assert not result.passed
    assert "interval 10 s" in str(result) and "at most 5 s" in str(result)


def test_exercise_06_passes_the_reference(client, lesson06, exercise06):
    exercise06.solve(client)
    result = run_check("06.healthcheck", client)
    assert result.passed, str(result)
    assert "turned unhealthy" in str(result) and "was healthy" in str(result)
