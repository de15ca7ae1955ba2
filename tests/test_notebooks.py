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

from helpers import record
from helpers.labels import label_filter

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(client, kit, path):
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
