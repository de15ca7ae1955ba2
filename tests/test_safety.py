"""The learner's machine stays theirs: the course never asks a registry for one of its own images
(`courseNN.invalid/...`), names the cell that builds a missing one, and never rewrites the
exercise files a learner edited."""
import html
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from docker.errors import ImageNotFound

from helpers.course import builder
from helpers.course.builder import MADE_IN, NEVER_BUILT, repository, where_made
from helpers.course.labels import labels
from helpers.course.lesson import CourseImageMissing

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {p.stem: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))}
# A course image's name as a lesson writes it (not a folder such as ~/.cache/dockercourse/course04/...)
COURSE_NAME = re.compile(r"(?<![\w/.-])(course\d\d\.invalid/[a-z0-9][a-z0-9._-]*)")


def headings(path: Path) -> set:
    nb = nbformat.read(path, as_version=4)
    return {line.lstrip("#").strip() for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")}


def names_in(path: Path) -> set:
    nb = nbformat.read(path, as_version=4)
    return {repository(m) for cell in nb.cells for m in COURSE_NAME.findall(cell.source)}


# ------------------------------------------------------------ which cell makes which image

def test_every_course_image_the_notebooks_name_is_mapped_to_a_real_heading():
    for stem, path in NOTEBOOKS.items():
        for name in sorted(names_in(path)):
            assert name in MADE_IN or name in NEVER_BUILT, \
                f"{stem} names {name}, which builder.MADE_IN does not map to the cell that builds it"
    for name, (stem, heading) in MADE_IN.items():
        assert stem in NOTEBOOKS, f"{name}: no notebook {stem}"
        assert name.startswith(f"course{stem[:2]}.invalid/"), f"{name} is mapped to {stem}"
        assert heading in headings(NOTEBOOKS[stem]), f"{name}: {stem} has no heading '{heading}'"


def test_the_exercises_images_are_mapped_too():
    from helpers.exercises import nb01, nb02, nb03, nb05, nb06
    for image in (nb01.MYSTERY, nb02.WEBAPP, nb03.IMAGE, nb05.WEBAPP, nb06.WEBAPP):
        assert builder.made_in(image), image


def test_where_made_names_the_notebook_and_the_heading():
    said = where_made("course02.invalid/webapp:latest")
    assert "02-containers" in said and "'A container is always made from an image'" in said
    assert "run that cell first" in said
    assert "no cell there builds" in where_made("course02.invalid/never-made")


def test_magic_names_the_cell_for_the_engines_own_error():
    from helpers.course.cli import missing_images_hint
    lines = ["Unable to find image 'course03.invalid/site:single' locally",
             'docker: Error response from daemon: Get "https://course03.invalid/v2/": dial tcp: '
             "lookup course03.invalid: no such host."]
    hint = missing_images_hint(lines)
    assert hint.count("\n") == 1 and "'Multi-stage builds: ship only what runs' in 03-dockerfile" in hint
    assert missing_images_hint(["Error: No such image: busybox:9"]) == ""


# ------------------------------------------------------------ on the engine: nothing is pulled

@pytest.fixture
def absent(monkeypatch):
    """A course image name that a cell 'builds' (mapped like course02's web app) and that is
    certainly not on the engine."""
    name = f"course99.invalid/throwaway-{uuid.uuid4().hex[:12]}"
    monkeypatch.setitem(MADE_IN, name, MADE_IN["course02.invalid/webapp"])
    return name


def pulls(client, since: int) -> list:
    """Pull events since `since` (whole seconds), except from lesson 01's registry on loopback,
    the one registry the course may pull from, whose last pull may fall in the same second."""
    until = int(time.time()) + 1
    return [e for e in client.events(since=since, until=until, decode=True,
                                     filters={"type": "image"})
            if (e.get("Action") == "pull" or e.get("status") == "pull")
            and not str(e.get("id", "")).startswith("127.0.0.1:")]


def test_run_create_and_pull_of_a_missing_course_image_name_the_cell(client, absent,
                                                                    monkeypatch):
    asked = []
    real_pull = client.api.pull
    monkeypatch.setattr(client.api, "pull", lambda *a, **k: asked.append(a) or real_pull(*a, **k))
    before = {c.id for c in client.containers.list(all=True)}
    since = int(time.time()) - 1
    calls = {"run": lambda: client.containers.run(absent, ["true"], labels=labels(99),
                                                     remove=True),
             "run detached": lambda: client.containers.run(absent, detach=True,
                                                          labels=labels(99)),
             "create": lambda: client.containers.create(absent, labels=labels(99)),
             "pull": lambda: client.images.pull(absent, tag="latest")}
    for what, call in calls.items():
        started = time.monotonic()
        with pytest.raises(CourseImageMissing) as err:
            call()
        assert time.monotonic() - started < 5, what
        said = str(err.value)
        assert said.startswith(absent) and CELL in said, (what, said)
        assert isinstance(err.value, ImageNotFound)   # code that catches the SDK's error still does
    assert asked == []                                # the SDK never sent a pull request
    assert pulls(client, since) == []                 # and the engine's events show none
    assert {c.id for c in client.containers.list(all=True)} == before   # nothing left behind
    assert client.images.list(name=absent) == []


def test_a_name_no_cell_makes_still_gets_the_engines_own_answer_on_create(client):
    """02-containers shows what the engine says for an image it lacks: create asks the engine
    (which never pulls on create), and run never pulls a course name."""
    name = f"course02.invalid/no-such-image-{uuid.uuid4().hex[:8]}:1.0"
    with pytest.raises(ImageNotFound) as err:
        client.containers.create(name, labels=labels(2))
    assert not isinstance(err.value, CourseImageMissing) and "No such image" in str(err.value)
    with pytest.raises(CourseImageMissing, match="no cell there builds"):
        client.containers.run(name, labels=labels(2), remove=True)


CELL = "The cell under 'A container is always made from an image' in 02-containers builds it"


def test_panels_say_which_cell_builds_the_image(client, absent):
    from helpers.course.lesson import Lesson
    from helpers.labs.lifecycle import LifecyclePanel
    from helpers.labs.port_publisher import PortPublisher
    lifecycle = LifecyclePanel(absent, lesson=Lesson(2), name=f"course02-test-{uuid.uuid4().hex[:6]}")
    lifecycle.buttons["create"].click()
    assert CELL in html.unescape(lifecycle.message.value), lifecycle.message.value
    publisher = PortPublisher(absent, 8080, lesson=Lesson(2))
    publisher.image.value = absent
    publisher.buttons["publish"].click()
    assert CELL in html.unescape(publisher.status.value), publisher.status.value
    assert publisher.container is None


def test_docker_magic_adds_the_cell_to_the_engines_error(client, absent):
    from helpers.course.cli import CommandFailed, run
    with pytest.raises(CommandFailed) as err:
        run(f"docker run --rm {absent} true", echo=False, timeout=60)
    assert where_made(f"{absent}:latest") in str(err.value)


# ------------------------------------------------------------ the learner's exercise files

WORK = ROOT / "notebooks" / "work"
# exercise → (its module, the learner's file in the real folder, that notebook)
LEARNER_FILES = {"03.nonroot": ("nb03", WORK / "03-webapp" / "Dockerfile", "03-dockerfile"),
                 "05.extend": ("nb05", WORK / "05" / "compose.yaml", "05-compose"),
                 "06.healthcheck": ("nb06", WORK / "06" / "compose.yaml", "06-healthchecks")}
EDIT = "\n# the learner's own edit: {}\n"


@pytest.fixture
def learner_files():
    """Each exercise file as a learner left it: theirs where there is one (read, never
    written), else one this test plants, from the starter plus an edit, and removes after."""
    from helpers.exercises import nb03, nb05, nb06
    planted, made = [], []
    for exercise_id, (module, path, _) in LEARNER_FILES.items():
        if path.exists():
            continue
        for parent in reversed(path.parents):
            if not parent.exists():
                made.append(parent)
        {"nb03": nb03, "nb05": nb05, "nb06": nb06}[module].prepare(folder=path.parent)
        path.write_text(path.read_text() + EDIT.format(uuid.uuid4().hex))
        planted.append(path)
    saved = {path: path.read_bytes() for _, path, _ in LEARNER_FILES.values()}
    beside = {path: set(path.parent.iterdir()) for path in saved}
    yield saved, beside
    for path in planted:
        for sibling in path.parent.iterdir():
            if sibling.is_file():
                sibling.unlink()
    for folder in reversed(made):
        import shutil
        shutil.rmtree(folder, ignore_errors=True)


def unchanged(saved: dict, beside: dict) -> list:
    problems = [f"{p} was rewritten" for p, data in saved.items()
                if not p.is_file() or p.read_bytes() != data]
    problems += [f"{p.parent} got {sorted(str(n.name) for n in set(p.parent.iterdir()) - beside[p])}"
                 for p in saved if set(p.parent.iterdir()) - beside[p]]
    return problems


@pytest.mark.parametrize("exercise_id", ["03.nonroot", "05.extend"])
def test_a_learners_edited_file_survives_the_check_and_the_exercise_test(
        client, kit, learner_files, monkeypatch, exercise_id):
    """The exercise test's whole round (reset, Check, solve, Check, reset) works on a copy; the
    Check button, pointed at the learner's real folder, only reads it."""
    import importlib
    from helpers.exercises import all_exercises, check_button, run_check
    from helpers.course.labels import clean_up
    saved, beside = learner_files
    module_name, real, _ = LEARNER_FILES[exercise_id]
    module = importlib.import_module(f"helpers.exercises.{module_name}")
    assert module.WORK != real.parent    # conftest: the tests' exercise folders are copies
    ex = all_exercises()[exercise_id]
    try:
        ex.reset(client)
        run_check(exercise_id, client)
        ex.solve(client)
        assert run_check(exercise_id, client).passed
        ex.reset(client)
        monkeypatch.setattr(module, "WORK", real.parent)   # the Check on the learner's own file
        panel = check_button(exercise_id)
        panel.check.click()
        assert "Not yet" in panel.output.value or "All done" in panel.output.value
    finally:
        monkeypatch.undo()
        ex.reset(client)
        clean_up(ex.notebook, client)
    assert unchanged(saved, beside) == []


def test_a_learners_edited_file_survives_the_notebooks_exercise_cells(client, kit,
                                                                      learner_files):
    """The notebooks' own cells around each exercise (its set-up, the cell that prepares the
    exercise folder, the Check panel), and the lesson's clean-up, run in a real kernel as the notebook
    test runs them, keep the learner's files."""
    from nbclient import NotebookClient
    saved, beside = learner_files
    for _, _, stem in LEARNER_FILES.values():
        nb = nbformat.read(NOTEBOOKS[stem], as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        nb.cells = [code[0]] + [c for c in code[1:] if "prepare(" in c.source or
                                "check_button(" in c.source]
        assert len(nb.cells) >= 3, stem
        nb.cells.append(nbformat.v4.new_code_cell("lesson.clean_up()"))
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS[stem].parent)}}).execute()
    assert unchanged(saved, beside) == []


# ------------------------------------------------------------ what the course changes on a machine

def readme_entries() -> list:
    """The first column of the README's table "What the course changes on a machine"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What the course changes on a machine", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [row.split(" | ")[0].lstrip("| ").strip() for row in rows]


def test_every_prefix_of_the_changed_files_check_names_a_readme_entry():
    import legs
    entries = readme_entries()
    assert len(entries) >= 10
    for prefix, entry in legs.CHANGES + [("/usr/", legs.PACKAGES_ENTRY)]:
        matching = [e for e in entries if e.startswith(entry)]
        assert len(matching) == 1, f"{prefix}: '{entry}' names {len(matching)} README entries"
    for prefix, why in legs.NOT_THE_COURSES:
        assert prefix.startswith(("/", "~/")) and why.strip(), prefix


def test_changed_files_are_grouped_by_the_longest_prefix():
    import legs
    home = str(Path.home())
    groups = legs.group_changes(
        [f"{home}/.cache/dockercourse/records/x.json", f"{home}/.cache/dockercourse/rootfs-a.tar",
         "/var/lib/dockercourse/26/x", "/usr/bin/qemu-system-x86_64", "/usr/bin/not-packaged",
         "/var/log/journal/x", "/etc/docker/key.json", "/srv/elsewhere"],
        packaged={"/usr/bin/qemu-system-x86_64"}, others=("/srv/",))
    assert groups["the creation record"] == [f"{home}/.cache/dockercourse/records/x.json"]
    assert groups["root file systems for offline images"] == [f"{home}/.cache/dockercourse/rootfs-a.tar"]
    assert groups["the course's engine"] == ["/var/lib/dockercourse/26/x"]
    assert groups[legs.PACKAGES_ENTRY] == ["/usr/bin/qemu-system-x86_64"]
    # under /usr but no package's; Engine 20.10's key belongs in its data-root, never in /etc
    assert groups["UNEXPLAINED"] == ["/usr/bin/not-packaged", "/etc/docker/key.json"]
    assert any(k.startswith("not the course's: the system journal") for k in groups)
    assert any(k.endswith("(--not-ours)") for k in groups)


@pytest.mark.parametrize("how", ["> {log} 2>&1", "2>&1 | tee {log} > /dev/null"])
def test_the_file_a_run_writes_its_own_log_to_is_not_the_courses(tmp_path, how):
    """CI keeps the output of `./course test` in a file of its own choosing, outside the
    checkout: redirected, or through a pipe to `tee`. The listing of changed files names it,
    and only it: another file changed meanwhile stays unexplained."""
    log, other = tmp_path / "out" / "ci.log", tmp_path / "elsewhere.txt"
    log.parent.mkdir()
    other.write_text("run 0123, set-up begins\n")      # another run's marker
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, "tests")
        import legs
        legs.say(legs.run_marker())
        started = time.monotonic()      # a run reports half an hour after its first line
        while legs.run_marker() not in Path({str(log)!r}).read_text() and \\
                time.monotonic() - started < 10:
            time.sleep(0.05)
        legs.changed_files = lambda stamp: [{str(log)!r}, {str(other)!r}]
        legs.packaged_since = lambda stamp: set()
        print("left:", legs.report_changes(None))
    """))
    subprocess.run(["bash", "-c", f"{sys.executable} {script} " + how.format(log=log)],
                   cwd=ROOT, check=True, timeout=60)
    printed = log.read_text()
    assert f"{legs_own_output()}: 1 files, e.g. {log}" in printed
    assert f"left: ['{other}']" in printed


def legs_own_output() -> str:
    import legs
    return legs.OWN_OUTPUT


def test_a_second_test_run_refuses_while_the_first_holds_the_engine(tmp_path, monkeypatch, capsys):
    """`./course test` stops any engine of the course's before its first leg: a leftover of an
    interrupted run. A second run started beside a running one must not reach that stop."""
    import legs
    lock = tmp_path / "test.lock"
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, 'tests'); import legs; "
         f"held = legs.take_the_run_lock(legs.Path({str(lock)!r})); print('held', flush=True); "
         "time.sleep(60)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        monkeypatch.setattr(legs, "RUN_LOCK", lock)
        monkeypatch.setattr(legs.own_engine, "stop", lambda *a, **k: pytest.fail("stopped"))
        monkeypatch.setattr(legs, "setup", lambda *a, **k: pytest.fail("set up"))
        assert legs.main(["--legs", "1"]) == 2
        said = capsys.readouterr().err
        assert f"another ./course test is running (pid {first.pid})" in said
        assert f"kill -INT {first.pid}" in said
    finally:
        first.kill()
        first.wait()
    held = legs.take_the_run_lock(lock)      # the first run gone: the lock is free again
    assert held is not None and lock.read_text() == str(os.getpid())
    held.close()
