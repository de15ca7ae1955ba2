"""The port publisher, clicked against the real engine: a real page through a published port,
and plain answers for ports that cannot be published, with nothing left behind."""
import socket

import pytest

from helpers.exercises.nb02 import build_webapp
from helpers.course.lesson import Lesson
from helpers.labs.port_publisher import PortPublisher, check_port
from helpers.course.ports import free_port


@pytest.fixture
def panel(client, kit):
    lesson = Lesson(2)
    image = build_webapp(lesson.client)
    p = PortPublisher(image.id, 8080, free_port(41000, quiet=True), lesson=lesson)
    yield p
    p.remove()


def left(client):
    return [c.name for c in client.containers.list(all=True, filters={"name": "course02-publisher"})]


def test_publish_fetches_the_page_and_remove_leaves_nothing(client, panel):
    panel.buttons["publish"].click()
    assert "Published" in panel.status.value, panel.status.value
    assert "hostname:" in panel.page.value
    assert "127.0.0.1" in panel.table.value
    limits = client.containers.get(panel.name).attrs["HostConfig"]
    assert limits["Memory"] == 256 * 2**20 and limits["PidsLimit"] == 128
    panel.buttons["remove"].click()
    assert left(client) == []


@pytest.mark.parametrize("port,words", [(70000, "does not exist"), (0, "Port 0"),
                                        ("eighty", "whole number")])
def test_impossible_ports_are_explained_before_anything_starts(client, panel, port, words):
    panel.host_port.value = port if isinstance(port, int) else 0
    if not isinstance(port, int):
        assert words in check_port(port, "host")
        return
    panel.buttons["publish"].click()
    assert words in panel.status.value and left(client) == []


def test_a_port_already_taken_is_named(client, panel):
    holder = socket.socket()
    holder.bind(("127.0.0.1", panel.host_port.value))
    holder.listen()
    try:
        panel.buttons["publish"].click()
        assert "already in use" in panel.status.value and left(client) == []
    finally:
        holder.close()
