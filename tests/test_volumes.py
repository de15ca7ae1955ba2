"""04-volumes on the real engine: the volume lab and browser panels (clicked as a learner
would), bad input, the fenced helper container, and the exercise's Check against each wrong
attempt and the reference solution."""
import time

import pytest
from docker.errors import NotFound

from helpers.labs import volumes
from helpers.exercises import get, run_check
from helpers.exercises.nb04 import CONTAINER, VOLUME
from helpers.course.images import ref
from helpers.course.labels import label_filter
from helpers.course.lesson import Lesson


@pytest.fixture(scope="module")
def lesson04(client, kit):
    lesson = Lesson(4)
    yield lesson
    lesson.clean_up()
    volumes.remove_host_folders(lesson)


def labelled_04(client) -> set:
    f = label_filter(4)
    return ({f"container {c.name}" for c in client.containers.list(all=True, filters=f)} |
            {f"volume {v.name}" for v in client.volumes.list(filters=f)} |
            {f"network {n.name}" for n in client.networks.list(filters=f)})


def all_volume_names(client) -> set:
    return {v.name for v in client.volumes.list()}


def text_of(html: str) -> str:
    import html as h
    return h.unescape(html)


# ------------------------------------------------------------ the volume lab

def test_lab_shows_what_survives_a_containers_removal(lesson04, tmp_path):
    lab = volumes.VolumeLab(volume="course04-labtest", folder=tmp_path, lesson=lesson04)
    lab.text.value = "kept or not?"
    lab.buttons["run"].click()
    assert "✘" not in lab.status.value, text_of(lab.status.value)
    survived = {r.kind: r.survived for r in lab.results}
    assert survived == {"container layer": False, "named volume": True, "bind mount": True,
                        "tmpfs": False}
    found = {r.kind: r.found for r in lab.results}
    assert found["named volume"] == found["bind mount"] == "kept or not?"
    assert found["container layer"] is None and found["tmpfs"] is None
    # the bind mount's file is on this machine, where Python reads it
    assert (tmp_path / volumes.NOTE).read_text() == "kept or not?"
    volume = lesson04.client.volumes.get("course04-labtest")
    assert volume.attrs["Labels"] == lesson04.labels
    assert "kept or not?" in lab.table.value
    # the lab's containers are gone: only the volume stays
    assert not lesson04.client.containers.list(all=True, filters=label_filter(4))


def test_lab_refuses_a_volume_name_with_forbidden_characters(lesson04, tmp_path):
    client = lesson04.client
    before, names = labelled_04(client), all_volume_names(client)
    lab = volumes.VolumeLab(volume="my data!", folder=tmp_path, lesson=lesson04)
    lab.buttons["run"].click()
    message = text_of(lab.status.value)
    assert "'my data!' cannot name a volume" in message and "letters, digits" in message
    assert "Traceback" not in message and "BadInput" not in message
    assert labelled_04(client) == before and all_volume_names(client) == names
    assert lab.results == []


def test_lab_refuses_a_bind_mount_of_a_missing_folder(lesson04, tmp_path):
    client = lesson04.client
    missing = tmp_path / "not-there"
    before, names = labelled_04(client), all_volume_names(client)
    lab = volumes.VolumeLab(volume="course04-labtest2", folder=missing, lesson=lesson04)
    lab.buttons["run"].click()
    message = text_of(lab.status.value)
    assert f"The folder {missing} does not exist" in message and "mkdir -p" in message
    assert not missing.exists(), "the engine must not have made the folder"
    assert labelled_04(client) == before and all_volume_names(client) == names


def test_check_bind_source_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(volumes.BadInput, match="is a file, not a folder"):
        volumes.check_bind_source(tmp_path / "f")


# ------------------------------------------------------------ the fenced helper container

def test_helper_container_is_fenced_and_removed(lesson04):
    code, out = volumes.run_fenced(["sh", "-c",
                                              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                              "/sys/fs/cgroup/memory.max 2>/dev/null; "
                                              "cat /sys/fs/cgroup/pids/pids.max "
                                              "/sys/fs/cgroup/pids.max 2>/dev/null; "
                                              "ip -o link 2>/dev/null | wc -l"], lesson=lesson04)
    numbers = out.split()
    assert str(32 * 2**20) in numbers and "32" in numbers[1:], out
    assert numbers[-1] == "1", "only the loopback interface: no network"
    assert not lesson04.client.containers.list(all=True, filters=label_filter(4))


def test_helper_container_is_stopped_at_the_time_limit(lesson04, monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_FENCE_SECONDS", "2")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="longer than 2 s"):
        volumes.run_fenced(["sleep", "30"], lesson=lesson04)
    assert time.monotonic() - started < 15
    assert not lesson04.client.containers.list(all=True, filters=label_filter(4))


# ------------------------------------------------------------ the volume browser

@pytest.fixture
def redis_with_anonymous_volume(lesson04):
    """Redis as `docker run redis:7-alpine redis-server --appendonly yes`: no -v, so the
    image's VOLUME /data gives it an anonymous volume."""
    server = lesson04.client.containers.run(ref("redis"), ["redis-server", "--appendonly", "yes"],
                                            detach=True, labels=lesson04.labels,
                                            name="course04-browsertest")
    deadline = time.monotonic() + 10
    while b"Ready to accept" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    server.exec_run(["redis-cli", "INCR", "hits"])
    server.reload()
    yield server, server.attrs["Mounts"][0]["Name"]
    try:
        server.remove(force=True, v=True)
    except NotFound:
        pass


@pytest.mark.parametrize("via", ["host", "container"])
def test_browser_lists_volumes_and_reads_their_files(lesson04, redis_with_anonymous_volume,
                                                     via):
    server, anonymous = redis_with_anonymous_volume
    volumes.ensure_volume("course04-browsed", lesson=lesson04)
    browser = volumes.VolumeBrowser(via=via, lesson=lesson04)
    rows = {r.name: r for r in browser.rows}
    assert rows["course04-browsed"].lesson == "04" and not rows["course04-browsed"].anonymous
    row = rows[anonymous]
    assert row.anonymous and row.containers == ["course04-browsertest"]
    assert row.mountpoint.endswith(f"{anonymous}/_data") and row.size_bytes > 0
    assert "(anonymous)" in browser.table.value and "course04-browsertest" in browser.table.value

    browser.choice.value = anonymous
    browser.buttons["files"].click()
    paths = {f.path for f in browser.files}
    assert "appendonlydir" in paths
    incr = next(p for p in paths if p.endswith(".incr.aof"))
    assert ("helper container" if via == "container" else "host") in text_of(
        browser.status.value)

    browser.path.value = incr
    browser.buttons["read"].click()
    assert "INCR" in browser.inside.value.upper() and "hits" in browser.inside.value
    browser.path.value = "../../../etc/shadow"
    browser.buttons["read"].click()
    assert "is not a path inside the volume" in text_of(browser.status.value)
    browser.path.value = "no/such/file"
    browser.buttons["read"].click()
    assert "There is no file no/such/file" in text_of(browser.status.value)
    # the helper containers are gone; the server is the only container left
    left = lesson04.client.containers.list(all=True, filters=label_filter(4))
    assert [c.name for c in left] == ["course04-browsertest"]


def test_browser_escapes_what_the_engine_says(lesson04):
    volumes.ensure_volume("course04-x", lesson=lesson04)
    browser = volumes.VolumeBrowser(via="host", lesson=lesson04)
    lesson04.client.volumes.get("course04-x").remove()
    browser.choice.options = ["<b>course04-x</b>"]
    browser.choice.value = "<b>course04-x</b>"
    browser.buttons["files"].click()
    assert "<b>course04-x</b>" not in browser.status.value   # shown, never run as HTML
    assert "✘" in browser.status.value


# ------------------------------------------------------------ the exercise

EXERCISE = "04.redis-data"


@pytest.fixture
def clean_exercise(client, lesson04):
    ex = get(EXERCISE)
    ex.reset(client)
    yield ex
    ex.reset(client)


def attempt(client, **options):
    container = client.containers.run(ref("redis"), detach=True, name=CONTAINER, **options)
    deadline = time.monotonic() + 10
    while b"Ready to accept" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    return container


def test_untouched_fails_and_says_what_to_do(client, clean_exercise):
    result = run_check(EXERCISE, client)
    assert not result.passed
    assert "there is no container named course04-redis" in str(result)
    assert all(line.fix for line in result.lines if not line.ok)


@pytest.mark.parametrize("wrong, options, says", [
    ("container layer", {"command": ["redis-server", "--dir", "/tmp"]},
     "in the container's own writable layer"),
    ("anonymous volume", {}, "an anonymous volume"),
    ("anonymous volume, AOF on", {"command": ["redis-server", "--appendonly", "yes"]},
     "an anonymous volume"),
    ("tmpfs", {"tmpfs": {"/data": ""}}, "a tmpfs in the container's memory"),
])
def test_each_wrong_attempt_is_rejected(client, clean_exercise, wrong, options, says):
    attempt(client, **options)
    result = run_check(EXERCISE, client)
    assert not result.passed, f"{wrong} passed:\n{result}"
    last = result.lines[-1]
    assert "the counter is gone instead of 1" in last.text and says in last.text, str(result)
    assert last.fix
    # the Check leaves a container of that name running, as it found one
    assert client.containers.get(CONTAINER).status == "running"


def test_a_stopped_container_is_not_recreated(client, clean_exercise):
    attempt(client, volumes={VOLUME: {"bind": "/data", "mode": "rw"}}).stop(timeout=2)
    result = run_check(EXERCISE, client)
    assert not result.passed and "docker start course04-redis" in str(result)


def test_a_bind_mount_survives_too(client, clean_exercise, tmp_path):
    tmp_path.chmod(0o777)   # Redis runs as uid 999 in the container and writes here
    attempt(client, command=["redis-server", "--appendonly", "yes"],
            volumes={str(tmp_path): {"bind": "/data", "mode": "rw"}})
    result = run_check(EXERCISE, client)
    assert result.passed, str(result)
    assert f"a bind mount of {tmp_path}" in str(result)
    client.containers.get(CONTAINER).remove(force=True)


def test_reference_solution_passes_and_keeps_counting(client, clean_exercise):
    clean_exercise.solve(client)
    first = run_check(EXERCISE, client)
    assert first.passed, str(first)
    assert f"the named volume {VOLUME}" in str(first)
    second = run_check(EXERCISE, client)      # a second Check counts on from the first
    assert second.passed and "hits = 2" in str(second), str(second)
    volume = client.volumes.get(VOLUME)
    assert volume.attrs["Labels"] == {"dockercourse.notebook": "04"}


def test_hint_does_not_give_the_answers_first_command():
    ex = get(EXERCISE)
    first = ex.answer.splitlines()[0]
    assert first.startswith("docker ") and first not in ex.hint
    assert VOLUME not in ex.hint and "-v " not in ex.hint and "docker volume" not in ex.hint
    for wrong in ("--dir /tmp", "VOLUME /data", "--tmpfs /data"):
        assert wrong in ex.task


def test_clean_up_removes_the_exercise_but_never_a_learners_own_volume(client, lesson04):
    own = client.volumes.create("my-own-notes")           # a learner's, made outside the course
    try:
        get(EXERCISE).solve(client)
        report = Lesson(4).clean_up()
        assert CONTAINER in report.containers and VOLUME in report.volumes
        with pytest.raises(NotFound):
            client.volumes.get(VOLUME)
        assert client.volumes.get("my-own-notes")
    finally:
        own.remove(force=True)
