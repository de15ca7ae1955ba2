"""Every notebook runs top to bottom against the real engine and leaves nothing labelled behind."""
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.labels import label_filter

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def leftovers(client, nn):
    f = label_filter(nn)
    return ([c.name for c in client.containers.list(all=True, filters=f)] +
            [n.name for n in client.networks.list(filters=f)] +
            [v.name for v in client.volumes.list(filters=f)] +
            [i.short_id for i in client.images.list(filters=f)])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(client, kit, path):
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.monotonic() - started
    print(f"{path.name}: {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert leftovers(client, path.name[:2]) == [], f"{path.name} left labelled resources behind"
