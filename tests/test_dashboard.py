"""The live dashboard: real stats and logs, a refresh thread that never blocks and always stops."""
import time

import pytest

from helpers.labs.dashboard import Dashboard
from helpers.course.labels import clean_up, labels
from helpers.course.lesson import Lesson


@pytest.fixture
def busy(client, kit):
    c = client.containers.run(kit["busybox"], ["sh", "-c", "echo hello-dashboard; sleep 60"],
                              detach=True, labels=labels(2), name="course02-test-dashboard")
    yield c
    clean_up(2, client)


def test_refresh_shows_state_memory_cpu_and_logs(client, busy):
    board = Dashboard(lesson=Lesson(2), nn=2)
    time.sleep(0.3)
    rows = board.refresh()
    row = next(r for r in rows if r["name"] == busy.name)
    assert row["status"] == "running" and row["notebook"] == "02"
    assert row["memory_mib"] is not None and row["memory_mib"] > 0
    assert row["cpu_percent"] is None  # one sample: no CPU figure yet
    assert "hello-dashboard" in row["logs"]
    row = next(r for r in board.refresh() if r["name"] == busy.name)
    assert row["cpu_percent"] is not None and row["cpu_percent"] >= 0
    assert busy.name in board.table.value and "MiB" in board.table.value


def test_background_refresh_does_not_block_and_stops(client, busy):
    board = Dashboard(lesson=Lesson(2), interval=0.2, nn=2)
    began = time.perf_counter()
    board.buttons["start"].click()
    assert time.perf_counter() - began < 0.5, "start() must return at once"
    deadline = time.time() + 10
    while board.refreshes < 3 and time.time() < deadline:
        time.sleep(0.1)
    assert board.refreshes >= 3 and board.running
    board.buttons["stop"].click()
    assert not board.running
    done = board.refreshes
    time.sleep(0.5)
    assert board.refreshes == done, "no refresh after stop"
    assert "stopped" in board.line.value
    board.start()
    board.close()
    assert not board.running


def test_empty_and_removed_containers(client, kit):
    clean_up(2, client)
    board = Dashboard(lesson=Lesson(2), nn=2)
    assert board.refresh() == [] and "No course containers" in board.table.value


def test_engine_not_answering_is_an_error_line(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/dockercourse-no-engine.sock")
    board = Dashboard(lesson=Lesson(2))
    assert board.refresh() == [] and "No Docker Engine answered" in board.status.value
