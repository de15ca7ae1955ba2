"""Tests run against the real Docker Engine, offline: nothing is ever pulled.

Every test that uses the engine or the course's CLI (through the `client`, `lesson`, `kit`,
`compose_cli` or `lab` fixtures, directly or not) is marked `engine` automatically, so `pytest -m "not engine"` runs the fast tier with no
engine at all.
"""
import os

os.environ["DOCKERCOURSE_OFFLINE"] = "1"
os.environ.setdefault("DOCKERCOURSE_FENCE_SECONDS", "10")

import pytest

ENGINE_FIXTURES = {"client", "lesson", "kit", "compose_cli", "lab"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def lesson():
    """The tests' own lesson (99): what they create through its client is recorded, under the
    lesson its label names, so that each lesson's clean-up finds it."""
    from helpers.course.engine import EngineUnavailable
    from helpers.course.lesson import Lesson
    lesson = Lesson(99)
    try:
        lesson.client
    except EngineUnavailable as exc:
        pytest.fail(f"This test needs a running Docker Engine (./course test starts one).\n{exc}",
                    pytrace=False)
    return lesson


@pytest.fixture(scope="session")
def compose_cli(lesson):
    """`docker compose` v2 as the course runs it (the course's CLI configuration finds it)."""
    return "docker compose"


@pytest.fixture(scope="session")
def client(lesson):
    from helpers.course.labels import clean_up_all
    c = lesson.client
    yield c
    clean_up_all(c)


@pytest.fixture(scope="session")
def kit(client):
    """Every course image present (built offline if need be), as {short name: ref}."""
    from helpers.course.images import catalogue, ensure_images
    ensure_images(client, allow_pull=False)
    return {name: img.ref for name, img in catalogue().items()}
