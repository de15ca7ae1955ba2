"""Compose driven from Python, the stack panel and exercise 05, against the real engine."""
import subprocess
import textwrap
import time

import pytest
import yaml

from helpers.course import record
from helpers.course.compose import (PROJECT, ComposeError, Stack, config, edges, learner_copy, parse_step)
from helpers.exercises import get, run_check
from helpers.exercises import nb05
from helpers.course.lesson import Lesson
from helpers.course.ports import fetch, free_port
from helpers.course.settings import DATA
from helpers.labs.stack_panel import StackPanel

PROJECT_NAME = "course05"
STACK = DATA / "compose" / "05" / "compose.yaml"
BUSYBOX = "busybox:1.35"


@pytest.fixture
def lesson05(client, kit, monkeypatch):
    monkeypatch.setenv("WEB_PORT", str(free_port(40550, quiet=True)))
    lesson05 = Lesson(5)
    yield lesson05
    lesson05.clean_up()


def leftovers(client, project=PROJECT_NAME):
    f = {"label": f"{PROJECT}={project}"}
    return ([c.name for c in client.containers.list(all=True, filters=f)] +
            [n.name for n in client.networks.list(filters=f)] +
            [v.name for v in client.volumes.list(filters=f)])


def compose_ls():
    done = subprocess.run(["docker", "compose", "ls", "-a", "--format", "json"],
                          capture_output=True, text=True, check=True)
    return done.stdout


def write(tmp_path, text, name="compose.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BUSYBOX_STACK = """\
    name: course05
    x-course: &course
      dockercourse.notebook: "05"
    services:
      front:
        image: busybox:1.35
        pull_policy: never
        command: ["sh", "-c", "echo front up; sleep 3600"]
        stop_grace_period: 1s
        depends_on: [back, store]
        labels: *course
      back:
        image: busybox:1.35
        pull_policy: never
        command: ["sh", "-c", "echo back up; sleep 3600"]
        stop_grace_period: 1s
        depends_on:
          store:
            condition: service_started
        volumes: [data:/data]
        labels: *course
      store:
        image: busybox:1.35
        pull_policy: never
        command: ["sh", "-c", "echo store up; sleep 3600"]
        stop_grace_period: 1s
        labels: *course
    networks:
      default:
        labels: *course
    volumes:
      data:
        labels: *course
    """


# ---------------------------------------------------------------- checking a file

def test_a_yaml_mistake_names_its_line_and_starts_nothing(tmp_path, client, lesson05):
    path = write(tmp_path, """\
        services:
          web:
            image: busybox:1.35
           command: ["true"]
        """)
    with pytest.raises(ComposeError) as err:
        Stack(path, PROJECT_NAME, lesson=lesson05).up()
    assert "not valid YAML: line 4" in str(err.value)
    assert '   command: ["true"]' in str(err.value)       # the line itself is shown
    assert leftovers(client) == []


def test_an_unknown_key_is_named_by_its_path_and_line(tmp_path, compose_cli):
    path = write(tmp_path, """\
        services:
          web:
            image: busybox:1.35
            imagee: busybox:1.35
        """)
    with pytest.raises(ComposeError) as err:
        config([path])
    text = str(err.value)
    assert "services.web.imagee" in text and "line 4" in text


def test_a_wrong_type_is_named_by_its_path(tmp_path, compose_cli):
    path = write(tmp_path, """\
        services:
          web:
            image: busybox:1.35
            ports: {a: 1}
        """)
    with pytest.raises(ComposeError) as err:
        config([path])
    assert "services.web.ports" in str(err.value) and "must be a list" in str(err.value)


def test_a_file_that_is_not_there_says_so(tmp_path):
    with pytest.raises(ComposeError, match="There is no compose file"):
        config([tmp_path / "nothing.yaml"])


def test_progress_lines_are_parsed():
    step = parse_step(' Container course05-web-1  Started')
    assert (step.kind, step.name, step.verb) == ("Container", "course05-web-1", "Started")
    assert parse_step(' Volume "course05_data"  Created').name == "course05_data"
    assert parse_step("#1 [web internal] load build definition") is None


# ---------------------------------------------------------------- up, ps, logs, down

def test_up_ps_logs_down_find_the_project_by_its_labels(tmp_path, client, lesson05):
    path = write(tmp_path, BUSYBOX_STACK)
    decoy = client.containers.create(BUSYBOX, "true", name="course05-front-1-decoy",
                                     labels=lesson05.labels)
    lesson05.record(decoy)
    stack = Stack(path, PROJECT_NAME, lesson=lesson05)
    try:
        containers = stack.up()
        assert sorted(c.labels["com.docker.compose.service"] for c in containers) == \
            ["back", "front", "store"]
        assert decoy.id not in {c.id for c in stack.containers()}    # names mean nothing
        # Compose started store before back and front: depends_on as the file says
        started = [s.name for s in stack.steps if s.verb == "Started"]
        assert started.index("course05-store-1") < started.index("course05-back-1") < \
            started.index("course05-front-1")
        rows = {r.service: r for r in stack.services()}
        assert {r.state for r in rows.values()} == {"running"}
        assert rows["front"].logs == ["front up"]
        assert "back up" in stack.logs("back")
        assert [v.name for v in stack.volumes()] == ["course05_data"]
        assert PROJECT_NAME in compose_ls()
        assert PROJECT_NAME in record.entries(client, "projects", "05")   # clean-up finds it
    finally:
        stack.down()
        decoy.remove(force=True)
    assert leftovers(client) == []
    assert PROJECT_NAME not in compose_ls()


def test_a_scaled_service_runs_its_copies_by_name(tmp_path, client, lesson05):
    path = write(tmp_path, BUSYBOX_STACK)
    stack = Stack(path, PROJECT_NAME, lesson=lesson05)
    try:
        stack.up(scales={"store": 3})
        stores = stack.containers("store")
        assert len(stores) == 3
        assert all(not c.ports for c in stores)                  # a scaled service: no host port
        answer = stack.containers("front")[0].exec_run(["nslookup", "store"]).output.decode()
        addresses = {c.attrs["NetworkSettings"]["Networks"]["course05_default"]["IPAddress"]
                     for c in stores}
        assert addresses <= set(answer.split()), answer          # DNS answers every copy
    finally:
        stack.down()
    assert leftovers(client) == []


def test_a_missing_image_is_never_pulled_and_names_the_cell(tmp_path, client, lesson05):
    path = write(tmp_path, """\
        services:
          app:
            image: course05.invalid/not-built:1
            pull_policy: never
            labels: {dockercourse.notebook: "05"}
        """)
    stack = Stack(path, PROJECT_NAME, lesson=lesson05,
                  built_by={"course05.invalid/not-built:1": "run the cell 'Build the app' in section 1"})
    with pytest.raises(ComposeError) as err:
        stack.up()
    assert "course05.invalid/not-built:1" in str(err.value)
    assert "run the cell 'Build the app' in section 1" in str(err.value)
    assert leftovers(client) == []


def test_a_missing_kit_image_names_the_set_up(tmp_path, client, lesson05):
    from helpers.course.compose import kit_advice
    assert "helpers.images ensure --name redis" in kit_advice("redis:7-alpine")
    assert kit_advice("course05.invalid/nothing") is None


def test_up_that_fails_half_way_leaves_nothing(tmp_path, client, lesson05):
    port = free_port(40580, quiet=True)
    path = write(tmp_path, f"""\
        services:
          one:
            image: busybox:1.35
            command: ["httpd", "-f", "-p", "8080"]
            ports: ["127.0.0.1:{port}:8080"]
            labels: {{dockercourse.notebook: "05"}}
          two:
            image: busybox:1.35
            command: ["httpd", "-f", "-p", "8080"]
            ports: ["127.0.0.1:{port}:8080"]
            labels: {{dockercourse.notebook: "05"}}
        """)
    with pytest.raises(ComposeError) as err:
        Stack(path, PROJECT_NAME, lesson=lesson05).up()
    assert f"Host port 127.0.0.1:{port} is taken" in str(err.value)
    assert "nothing is left running" in str(err.value)
    assert leftovers(client) == []


def test_the_course_stack_counts_visits_in_redis(client, lesson05):
    import os
    stack = Stack(STACK, PROJECT_NAME, lesson=lesson05)
    try:
        stack.up()
        port = os.environ["WEB_PORT"]
        first = fetch(f"http://127.0.0.1:{port}/", wait_seconds=10)
        second = fetch(f"http://127.0.0.1:{port}/")
        assert "visits: 1" in first and "visits: 2" in second
        assert ("web", "redis", "service_started") in stack.edges()
    finally:
        stack.down()
    assert leftovers(client) == []
    # the web app's image, built by Compose, is the lesson's: clean-up removes it
    lesson05.clean_up()
    assert client.images.list(name="course05.invalid/webapp") == []


# ---------------------------------------------------------------- the panel

def test_the_panel_draws_the_files_edges_and_follows_up_and_down(tmp_path, client, lesson05):
    path = write(tmp_path, BUSYBOX_STACK)
    panel = StackPanel(Stack(path, PROJECT_NAME, lesson=lesson05), live_seconds=0)
    declared = yaml.safe_load(path.read_text())["services"]
    from_file = {(name, dep) for name, s in declared.items()
                 for dep in (s.get("depends_on") or [])}
    assert set(panel.drawn_edges) == from_file == {("front", "back"), ("front", "store"),
                                                   ("back", "store")}
    assert {r.state for r in panel.rows} == {"not created"}
    panel.buttons["up"].click()
    assert "is up" in panel.status.value, panel.status.value
    assert {r.state for r in panel.rows} == {"running"}
    assert bytes(panel.graph.value).startswith(b"\x89PNG")
    assert "front up" in panel.table.value
    panel.buttons["down"].click()
    assert "is down" in panel.status.value
    assert leftovers(client) == []


def test_the_panel_reports_a_malformed_file_and_starts_nothing(tmp_path, client, lesson05):
    bad = write(tmp_path, "services:\n  web:\n    image: busybox:1.35\n   command: x\n")
    panel = StackPanel(Stack(STACK, PROJECT_NAME, lesson=lesson05), live_seconds=0)
    panel.files.value = str(bad)
    panel.buttons["up"].click()
    assert "line 4" in panel.status.value and "Traceback" not in panel.status.value
    assert leftovers(client) == []


def test_the_panel_reports_a_missing_image_without_pulling(tmp_path, client, lesson05):
    bad = write(tmp_path, """\
        services:
          web:
            image: course05.invalid/never-built:1
            pull_policy: never
        """)
    panel = StackPanel(Stack(bad, PROJECT_NAME, lesson=lesson05), live_seconds=0)
    began = int(time.time())
    panel.buttons["up"].click()
    assert "course05.invalid/never-built:1" in panel.message
    assert "does not pull" in panel.message
    pulls = client.events(since=began - 1, until=int(time.time()) + 1, decode=True,
                          filters={"type": "image", "event": "pull"})
    assert [e for e in pulls if "never-built" in str(e)] == []
    assert leftovers(client) == []


def test_the_panel_reports_a_healthcheck_command_that_does_not_exist(tmp_path, client, lesson05):
    bad = write(tmp_path, """\
        services:
          box:
            image: busybox:1.35
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            labels: {dockercourse.notebook: "05"}
            healthcheck:
              test: ["CMD", "no-such-probe"]
              interval: 1s
              retries: 1
        """)
    panel = StackPanel(Stack(bad, PROJECT_NAME, lesson=lesson05), live_seconds=0)
    panel.buttons["up"].click()
    text = panel.status.value
    assert "`no-such-probe` does not exist in its image" in text, text
    assert "nothing is left running" in text
    assert leftovers(client) == []


# ---------------------------------------------------------------- exercise 05

@pytest.fixture
def exercise05(lesson05, client):
    ex = get("05.extend")
    ex.reset(client)
    yield ex
    ex.reset(client)


def _start_copy(text_change, lesson05):
    target = nb05.prepare(overwrite=True)
    target.write_text(text_change(target.read_text()))
    nb05.stack(lesson=lesson05).up()


def test_exercise_05_rejects_the_untouched_stack(client, lesson05, exercise05):
    assert not run_check("05.extend", client).passed          # nothing runs
    _start_copy(lambda t: t, lesson05)
    result = run_check("05.extend", client)
    assert not result.passed
    assert "only the services it came with" in str(result)


def test_exercise_05_rejects_a_volume_declared_but_not_mounted(client, lesson05, exercise05):
    def change(text):
        block = nb05.SERVICE_BLOCK.replace("    volumes:\n      - logs:/logs\n", "")
        return nb05.insert_after(nb05.insert_after(text, "services:", block), "volumes:",
                                 nb05.VOLUME_BLOCK)
    _start_copy(change, lesson05)
    result = run_check("05.extend", client)
    assert not result.passed
    assert "volume logs is declared but no running container mounts it" in str(result)


def test_exercise_05_rejects_a_service_off_the_projects_network(client, lesson05, exercise05):
    def change(text):
        block = nb05.SERVICE_BLOCK.replace("    depends_on: [web]\n",
                                           "    network_mode: none\n")
        block = block.replace("wget -qO- http://web:8080/ | grep visits >> /logs/visits.log",
                              "date >> /logs/visits.log")
        return nb05.insert_after(nb05.insert_after(text, "services:", block), "volumes:",
                                 nb05.VOLUME_BLOCK)
    _start_copy(change, lesson05)
    result = run_check("05.extend", client)
    assert not result.passed
    assert "service visits-log is not on the project's network" in str(result)


def test_exercise_05_rejects_the_shipped_file_and_passes_the_reference(client, lesson05,
                                                                      exercise05):
    Stack(STACK, PROJECT_NAME, lesson=lesson05).up()
    result = run_check("05.extend", client)
    assert not result.passed and "not from your copy" in str(result)
    Stack(STACK, PROJECT_NAME, lesson=lesson05).down()
    exercise05.solve(client)
    result = run_check("05.extend", client)
    assert result.passed, str(result)


def test_hints_do_not_give_the_answers_first_command():
    for eid in ("05.extend", "06.healthcheck"):
        ex = get(eid)
        first = next(l for l in ex.answer.splitlines() if l.strip() and not l.startswith("#"))
        assert first.strip() not in ex.hint, (eid, first)


def test_the_learners_copy_never_touches_the_shipped_files(tmp_path, compose_cli):
    shipped = (DATA / "compose" / "stack.yaml").read_bytes()
    copy = learner_copy(tmp_path / "05", "05", port=40123)
    copy.write_text(copy.read_text() + "# mine\n")
    learner_copy(tmp_path / "05", "05")                      # again: the learner's edit stays
    assert copy.read_text().endswith("# mine\n")
    assert (tmp_path / "05" / ".env").read_text() == "DOCKERCOURSE_NOTEBOOK=05\nWEB_PORT=40123\n"
    assert (DATA / "compose" / "stack.yaml").read_bytes() == shipped
    cfg = config([copy], "course05")
    assert cfg["name"] == "course05"
    assert cfg["services"]["web"]["build"]["context"] == str(DATA / "webapp")
    assert edges(cfg) == [("web", "redis", "service_started")]
