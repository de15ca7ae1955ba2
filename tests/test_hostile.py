"""What a learner types into a panel runs fenced: fifteen hostile inputs, each answered in its
own panel in plain words within its time limit plus 10 s, nothing left behind, and the engine
answering afterwards. Each test prints which limit caught it and how long things took.
(The port publisher's three and the explorer's two are in test_port_publisher.py and
test_explorer.py.)"""
import subprocess
import time

import pytest

from helpers.course import settings
from helpers.labs.dockerfile_editor import DockerfileEditor
from helpers.labs.entrypoint_lab import EntrypointTable
from helpers.course.lesson import Lesson

BUSYBOX = "busybox:1.35"


def engine_things(client):
    """Lesson 03's containers, images, volumes and networks, and every untagged image (a
    failed legacy build's step images would be untagged and unlabelled... or labelled)."""
    mine = {"label": "dockercourse.notebook=03"}
    return ({c.id for c in client.containers.list(all=True, filters=mine)},
            {i.id for i in client.images.list(all=True, filters=mine)} |
            {i.id for i in client.images.list(all=True, filters={"dangling": True})},
            {v.name for v in client.volumes.list(filters=mine)},
            {n.id for n in client.networks.list(filters=mine)})


def engine_answers_after(started):
    began = time.monotonic()
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - began


@pytest.fixture
def editor(client, kit, tmp_path):
    return DockerfileEditor(tmp_path / "lab", samples={}, tag="course03.invalid/hostile",
                            lesson=Lesson(3))


DOCKERFILES = {
    "fork bomb": (f"FROM {BUSYBOX}\nRUN i=0; while [ $i -lt 3000 ]; do sleep 20 & "
                  "i=$((i+1)); done; wait\n"),
    "memory hog": f"FROM {BUSYBOX}\nRUN x=$(head -c 900000000 /dev/zero | tr '\\0' a); echo ${{#x}}\n",
    "endless RUN": f"FROM {BUSYBOX}\nRUN while :; do :; done\n",
    "endless output": f"FROM {BUSYBOX}\nRUN yes 'all work and no play'\n",
    "FROM a missing image": "FROM course03.invalid/nothing-here:1\nRUN true\n",
    "a syntax error": f"FROM {BUSYBOX}\nRUN [\"echo\", \"unclosed\nFROMM nothing\n",
}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hostile_dockerfile(client, editor, name, capsys):
    before = engine_things(client)
    editor.text.value = DOCKERFILES[name]
    began = time.monotonic()
    editor.buttons["build"].click()
    seconds = time.monotonic() - began
    result = editor.results[-1] if editor.results else None
    shown = editor.status.value
    assert result is not None and not result.ok, shown
    assert "Traceback" not in shown and ("✘" in shown), shown
    assert seconds < settings.fence_seconds() + 10, seconds
    caught = ("the time limit" if result.timed_out else
              "the process cap" if "can't fork" in "\n".join(result.log) else
              "the memory cap" if "137" in result.error or "killed" in result.error.lower()
              else "the builder's own check")
    after = engine_things(client)
    assert [a - b for a, b in zip(after, before)] == [set(), set(), set(), set()]
    engine_s = engine_answers_after(began)
    with capsys.disabled():
        print(f"\n  {name}: answered in {seconds:.1f} s, caught by {caught}; "
              f"the engine answered {engine_s * 1000:.0f} ms later ({result.fence.describe()})")


def test_a_one_megabyte_dockerfile_is_refused_before_any_build(client, editor):
    editor.text.value = f"FROM {BUSYBOX}\n" + "# padding\n" * 110_000
    editor.buttons["build"].click()
    assert "KiB" in editor.status.value and "Shorten it" in editor.status.value
    assert editor.results == []


@pytest.fixture
def table(client, kit):
    return EntrypointTable(lesson=Lesson(3))


@pytest.mark.parametrize("args,words", [
    ('echo "unbalanced', "close every quote"),
    ("sleep 600", "time limit"),
    ("yes", "time limit"),
])
def test_hostile_run_arguments(client, table, args, words, capsys):
    before = engine_things(client)
    table.entrypoint.value, table.cmd.value, table.args.value = "none", "exec", args
    began = time.monotonic()
    table.buttons["run"].click()
    seconds = time.monotonic() - began
    shown = table.status.value + table.with_args.value
    assert words in shown, shown
    if args == "yes":   # what it printed was read in a bounded amount
        from helpers.course.fence import OUTPUT_BYTES
        assert len(table.arg_trials[-1].output.encode()) <= OUTPUT_BYTES + 100
    assert seconds < settings.fence_seconds() + 10 + 15, seconds   # + the image's build
    after = engine_things(client)
    assert after[0] - before[0] == set() and after[2] - before[2] == set()
    engine_s = engine_answers_after(began)
    with capsys.disabled():
        print(f"\n  run args {args!r}: answered in {seconds:.1f} s; the engine answered "
              f"{engine_s * 1000:.0f} ms later")
