"""The preflight panel of notebook 00, driven in plain pytest against the real engine."""
import uuid

from helpers.course import images
from helpers.course.settings import DATA
from helpers.course.labels import labels
from helpers.labs.preflight import Preflight
from throwaway import remove_name, throwaway_kit


def test_every_line_green_but_kvm(client, kit):
    panel = Preflight(lesson=client.lesson)
    lines = panel.run()
    texts = [l.text for l in lines]
    assert any(t.startswith("Engine ") for t in texts)
    assert [l for l in lines if l.ok is False] == [], texts
    assert "KVM" in texts[-1]
    assert panel.ready
    assert panel.output.value.count("✔") == len([l for l in lines if l.ok])


def test_missing_image_red_then_prepare_button_fixes_it(client, kit, monkeypatch):
    """A kit image the engine lacks (a throwaway name, never busybox:1.35 itself) is a red
    line, and Prepare builds it."""
    from helpers.labs import preflight
    monkeypatch.setattr(images, "bundle_path", lambda: DATA / "no-such-bundle.tar")
    missing = throwaway_kit(monkeypatch, "busybox", preflight)
    try:
        panel = Preflight(lesson=client.lesson)
        panel.run()
        red = [l for l in panel.lines if l.ok is False]
        assert len(red) == 1 and missing in red[0].text and "Prepare" in red[0].fix
        assert not panel.ready
        panel.buttons["prepare"].click()
        assert client.images.get(missing)
        assert panel.ready, [l.text for l in panel.lines]
        assert panel.progress.children[0].value == 1.0
    finally:
        remove_name(client, missing)


def test_clean_button_removes_only_the_course_resources(client, kit):
    """The course's container (recorded) goes; the learner's stay, even one that carries the
    course's label (as one made from a course image does)."""
    import docker
    tag = uuid.uuid4().hex[:6]
    plain = docker.from_env()   # as a learner's own program: nothing it makes is recorded
    own = plain.containers.create(kit["busybox"], ["true"], name=f"learner-{tag}")
    alike = plain.containers.create(kit["busybox"], ["true"], name=f"learner-alike-{tag}",
                                    labels=labels(2))
    client.containers.create(kit["busybox"], ["true"], name=f"course-{tag}", labels=labels(2))
    try:
        panel = Preflight(lesson=client.lesson)
        panel.buttons["clean"].click()
        names = [c.name for c in client.containers.list(all=True)]
        assert f"learner-{tag}" in names and f"learner-alike-{tag}" in names
        assert f"course-{tag}" not in names
        assert "Removed 1 containers" in panel.message.value
    finally:
        own.remove(force=True)
        alike.remove(force=True)
