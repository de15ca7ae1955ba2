"""Tests run against the real Docker Engine, offline: nothing is ever pulled.

Every test that uses the engine or the course's CLI (through the `client`, `lesson`, `kit`,
`compose_cli` or `lab` fixtures, directly or not) is marked `engine` automatically, and so is
every test that boots a QEMU guest (marked `vm`), so `pytest -m "not engine"` runs the fast tier
with no engine and no guest at all.
"""
import os

os.environ["DOCKERCOURSE_OFFLINE"] = "1"
os.environ.setdefault("DOCKERCOURSE_FENCE_SECONDS", "10")

import pytest

ENGINE_FIXTURES = {"client", "lesson", "kit", "compose_cli", "lab"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())) or \
                item.get_closest_marker("vm"):
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


# The kit images a learner may have pulled themselves (a genuine busybox:1.35): no test may
# remove or replace them. Tests that need a missing kit image use a throwaway name
# (tests/throwaway.py).
KIT_KEPT = ("busybox", "python", "redis", "registry")


@pytest.fixture(scope="session", autouse=True)
def kit_images_unchanged(request):
    """Each of KIT_KEPT's images present when the session starts has the same ID at its end."""
    if not any(item.get_closest_marker("engine") for item in request.session.items):
        yield
        return
    from helpers.course.engine import connect
    from helpers.course.images import catalogue
    refs = [catalogue()[name].ref for name in KIT_KEPT]
    try:
        client = connect()
    except Exception:   # no engine: the engine tests say so themselves
        yield
        return

    def ids() -> dict:
        found = {}
        for ref in refs:
            try:
                found[ref] = client.api.inspect_image(ref)["Id"]
            except Exception:
                found[ref] = None
        return found

    before = ids()
    yield
    after = ids()
    client.close()
    changed = {ref: f"{before[ref]} → {after[ref]}" for ref in refs
               if before[ref] and after[ref] != before[ref]}
    assert not changed, f"tests removed or replaced kit images they did not make: {changed}"


@pytest.fixture(scope="session", autouse=True)
def exercise_folders_are_copies(tmp_path_factory):
    """The exercises' folders under notebooks/work/ are the learner's: tests (Checks, solutions,
    resets) work on copies in a temporary folder, and the learner's files that were there when
    the session started are byte for byte the same at its end (the notebook test included,
    whose kernels use the real folders)."""
    from helpers.exercises import nb03, nb05, nb06
    modules = (nb03, nb05, nb06)
    learner = [m.WORK / name for m in modules for name in ("Dockerfile", "compose.yaml")]
    before = {p: p.read_bytes() for p in learner if p.is_file()}
    copies = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as patch:
        for m in modules:
            patch.setattr(m, "WORK", copies / m.WORK.name)
        yield
    changed = [str(p) for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
    assert not changed, f"tests rewrote a learner's exercise files: {changed}"
