"""The lifecycle panel, clicked against the real engine."""
import pytest

from helpers.course.labels import clean_up
from helpers.course.lesson import Lesson
from helpers.labs.lifecycle import LifecyclePanel, diagram_svg


@pytest.fixture
def panel(client, kit):
    p = LifecyclePanel(kit["busybox"], lesson=Lesson(2), name="course02-test-lifecycle")
    yield p
    p.remove()
    clean_up(2, client)


def current(panel):
    return panel.diagram.value.split('data-current="true"')[0].rsplit('data-state="', 1)[1] \
        .split('"')[0]


def test_every_transition_as_the_engine_reports_it(panel):
    assert panel.state == "none"
    for action, state in (("create", "created"), ("start", "running"), ("pause", "paused"),
                          ("unpause", "running"), ("stop", "exited"), ("start", "running"),
                          ("kill", "exited"), ("restart", "running"), ("stop", "exited"),
                          ("remove", "removed")):
        panel.buttons[action].click()
        assert panel.state == state, (action, panel.message.value)
        assert current(panel) == state
        assert panel.log[-1][1], panel.message.value
    panel.buttons["create"].click()
    assert panel.state == "created"


def test_stop_is_quick(panel):
    panel.do("create")
    panel.do("start")
    panel.do("stop")
    assert panel.log[-1][4] < 5, "the sleeper must end on SIGTERM, not after the grace period"


def test_invalid_transitions_are_explained_not_raised(panel):
    panel.buttons["start"].click()                     # nothing to start yet
    assert panel.state == "none" and "create first" in panel.message.value
    panel.do("create")
    panel.buttons["pause"].click()                     # engine refuses: not running
    assert panel.state == "created" and "Cannot pause" in panel.message.value
    assert "engine answered" in panel.message.value
    panel.do("start")
    panel.buttons["remove"].click()                    # running: stop first
    assert panel.state == "running" and "stop it first" in panel.message.value
    panel.buttons["create"].click()                    # a second container: refused
    assert "already has a container" in panel.message.value
    panel.do("pause")
    panel.buttons["start"].click()
    assert panel.state == "paused" and "unpause" in panel.message.value
    assert not panel.log[-1][1]


def test_missing_image_is_an_error_line(client):
    p = LifecyclePanel("course02.invalid/does-not-exist:1", lesson=Lesson(2), name="course02-test-noimage")
    p.buttons["create"].click()
    assert "not on this engine" in p.message.value and p.state == "none"


def test_panel_adopts_its_container_after_a_rerun(client, kit, panel):
    panel.do("create")
    panel.do("start")
    again = LifecyclePanel(kit["busybox"], lesson=Lesson(2), name=panel.name)
    assert again.state == "running"


def test_diagram_marks_one_state():
    svg = diagram_svg("paused", ("running", "paused"))
    assert svg.count('data-current="true"') == 1
    assert 'data-state="paused" data-current="true"' in svg
    assert "no container yet" in diagram_svg("none")


def test_engine_not_answering_is_an_error_line(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/dockercourse-no-engine.sock")
    p = LifecyclePanel("busybox:1.35", lesson=Lesson(2), name="course02-test-dead")
    assert "No Docker Engine answered" in p.message.value
    assert p.do("create") is False and "No Docker Engine answered" in p.message.value
