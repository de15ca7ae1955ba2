"""Every notebook runs top to bottom against the real engine and leaves nothing of its own
behind: nothing new that carries its label, nothing in the creation record, no Compose project."""
import json
import os
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.course import record
from helpers.course.labels import label_filter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
TIMES = ROOT / "tests" / "artifacts" / "notebook-times.tsv"


def labelled(client, nn):
    f = label_filter(nn)
    return ({f"container {c.id}" for c in client.containers.list(all=True, filters=f)} |
            {f"network {n.id}" for n in client.networks.list(filters=f)} |
            {f"volume {v.name}" for v in client.volumes.list(filters=f)} |
            {f"image {i.id}" for i in client.images.list(all=True, filters=f)})


def compose_projects(nn):
    done = subprocess.run(["docker", "compose", "ls", "-a", "--format", "json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return []
    return [p["Name"] for p in json.loads(done.stdout or "[]")
            if p["Name"].startswith(f"course{nn}")]


def note_time(what: str, name: str, seconds: float) -> None:
    TIMES.parent.mkdir(exist_ok=True)
    with open(TIMES, "a") as f:
        f.write(f"{os.environ.get('DOCKERCOURSE_LEG', '-')}\t{what}\t{name}\t{seconds:.1f}\n")


def run_notebook(path: Path) -> tuple[float, list]:
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error" or
              (o.get("output_type") == "stream" and o.get("name") == "stderr"
               and "Traceback" in o.get("text", ""))]
    return time.monotonic() - started, errors


def _run_and_check(client, path):
    nn = path.name[:2]
    before = labelled(client, nn)
    seconds, errors = run_notebook(path)
    note_time("nbclient", path.name, seconds)
    print(f"{path.name}: {seconds:.1f} s")
    assert not errors, errors
    assert labelled(client, nn) - before == set(), f"{path.name} left labelled resources behind"
    assert record.entries(client, "containers", nn) == {}
    assert record.entries(client, "images", nn) == {}
    assert record.entries(client, "volumes", nn) == {}
    assert record.entries(client, "projects", nn) == {}
    assert compose_projects(nn) == []


@pytest.fixture(scope="module")
def planted(client, kit):
    """A learner's own things, made before the lessons run: an extra tag on a course image, an
    image built FROM it (which inherits the lesson's label), containers from each, one made in a
    terminal from a course image, a volume and a network. The course must leave all of them."""
    import io

    import docker
    from helpers.exercises.nb02 import build_webapp
    from helpers.course.lesson import Lesson
    mine = docker.from_env()                               # the learner's: nothing recorded
    _remove_planted(mine)                                  # what an interrupted run left
    course_image = build_webapp(Lesson(2).client)          # the course's, recorded
    mine.images.get(course_image.id).tag("mine/keep", "1")
    derived, _ = mine.images.build(fileobj=io.BytesIO(
        f"FROM {course_image.id}\nRUN echo mine > /mine.txt\n".encode()), tag="mine/app:1", rm=True)
    things = {
        "containers": [
            mine.containers.create("mine/app:1", name="my-own-app"),
            mine.containers.create("mine/keep:1", name="my-kept-app"),
        ],
        "volumes": [mine.volumes.create("my-volume")],
        "networks": [mine.networks.create("my-network")],
    }
    subprocess.run(["docker", "create", "--name", "my-terminal-box", kit["busybox"], "true"],
                   check=True, capture_output=True)
    things["containers"].append(mine.containers.get("my-terminal-box"))
    images = {i.id: sorted(i.tags) for i in (mine.images.get("mine/keep:1"), derived)}
    yield {"images": images, "containers": {c.id: c.name for c in things["containers"]},
           "volumes": [v.name for v in things["volumes"]],
           "networks": {n.id: n.name for n in things["networks"]}}
    _remove_planted(mine)


def _remove_planted(mine):
    import docker
    for name in ("my-own-app", "my-kept-app", "my-terminal-box"):
        try:
            mine.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
    for gone in (lambda: mine.volumes.get("my-volume").remove(force=True),
                 lambda: [n.remove() for n in mine.networks.list(names=["my-network"])],
                 lambda: mine.images.remove("mine/app:1"), lambda: mine.images.remove("mine/keep:1")):
        try:
            gone()
        except docker.errors.NotFound:
            pass


def _check_planted(client, planted):
    for image_id, tags in planted["images"].items():
        assert sorted(client.images.get(image_id).tags) == [t for t in tags
                                                           if not t.startswith("course")], image_id
    for cid, name in planted["containers"].items():
        assert client.containers.get(cid).name == name
    for name in planted["volumes"]:
        assert client.volumes.get(name)
    for nid, name in planted["networks"].items():
        assert client.networks.get(nid).name == name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(client, kit, planted, path):
    _run_and_check(client, path)


def test_a_learners_own_things_survive_every_lesson_and_course_clean(client, planted):
    """After every notebook's clean-up (above) and `./course clean`, the learner's things are
    there with the same IDs and tags, and nothing the course recorded remains but its kit."""
    _check_planted(client, planted)
    done = subprocess.run([str(ROOT / "course"), "clean"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _check_planted(client, planted)
    for kind in record.KINDS:
        left = {k: e for k, e in record.entries(client, kind).items() if e["nn"] != "kit"}
        assert left == {}, (kind, left)
