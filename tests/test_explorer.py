"""The image explorer against the real engine: layers, files per layer, shared layers, the panel."""
import io

import pytest

from helpers.explorer import ImageExplorer, layer_files, layers, shared_layers, which_layer
from helpers.exercises.nb01 import MYSTERY, SECRET_FILE, prepare_mystery
from helpers.labels import clean_up, labels


@pytest.fixture(scope="module")
def images(client, kit):
    """Two small images FROM busybox, each adding one file in one layer."""
    built = {}
    for name, line in (("one", "echo one > /srv/one.txt"), ("two", "echo two > /srv/two.txt")):
        dockerfile = f"FROM {kit['busybox']}\nRUN mkdir -p /srv && {line}\n"
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()),
                                       tag=f"course01/test-{name}", labels=labels(1), rm=True)
        built[name] = f"course01/test-{name}"
    prepare_mystery(client)
    yield built
    clean_up(1, client)


def test_layers_pair_each_layer_with_its_step(client, images, kit):
    stack = layers(client, images["one"])
    base = layers(client, kit["busybox"])
    assert len(stack) == len(base) + 1
    assert stack[-1].step.startswith("RUN mkdir -p /srv")
    assert stack[-1].size_bytes > 0 and stack[-1].step_image_id.startswith("sha256:")
    assert [l.diff_id for l in stack[:-1]] == [l.diff_id for l in base]


def test_shared_layers_are_the_common_base(client, images, kit):
    shared = shared_layers(client, images["one"], images["two"])
    assert [l.diff_id for l in shared] == [l.diff_id for l in layers(client, kit["busybox"])]
    assert shared_layers(client, images["one"], images["one"]) == layers(client, images["one"])


def test_layer_files_sees_added_changed_and_deleted(client, images):
    files = layer_files(client, MYSTERY)
    top = files[-1]
    assert "/opt/app/VERSION" in top.changed
    assert "/opt/app/conf/logging.ini" in top.deleted
    assert any("/srv/one.txt" in f.added for f in layer_files(client, images["one"]))


def test_which_layer_finds_the_step(client, images):
    layer = which_layer(client, MYSTERY, SECRET_FILE)
    assert SECRET_FILE in layer.step
    assert which_layer(client, MYSTERY, "/opt/app/conf/logging.ini") is None  # deleted later
    assert which_layer(client, MYSTERY, "/no/such/file") is None


def test_explorer_panel_shows_inspect_history_layers(client, images):
    ex = ImageExplorer(client, image=images["one"])
    assert ex.image.value == images["one"] + ":latest"
    assert "docker image inspect" in ex.inspect_html.value and "course01/test-one" in \
        ex.inspect_html.value
    assert "docker history" in ex.history_html.value and "mkdir -p /srv" in ex.history_html.value
    assert ex.chart.value[:4] == b"\x89PNG"
    ex.compare.value = images["two"] + ":latest"
    assert "share their bottom" in ex.shared_html.value


def test_explorer_find_button(client, images):
    ex = ImageExplorer(client, image=MYSTERY)
    ex.path.value = SECRET_FILE
    ex.find_button.click()
    assert "was put there by layer" in ex.find_html.value
    ex.path.value = "/nope"
    ex.find_button.click()
    assert "No layer" in ex.find_html.value
    ex.path.value = ""
    ex.find_button.click()
    assert "Type a path" in ex.find_html.value


def test_explorer_reports_a_vanished_image(client, kit):
    dockerfile = f"FROM {kit['busybox']}\nRUN echo gone > /gone.txt\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="course01/test-gone",
                        labels=labels(1), rm=True)
    ex = ImageExplorer(client, image="course01/test-gone:latest")
    client.images.remove("course01/test-gone:latest", force=True)
    ex.show()
    assert "gone" in ex.error.value and "Refresh" in ex.error.value
    ex.refresh_button.click()
    assert "course01/test-gone:latest" not in ex.image.options


def test_engine_not_answering_is_an_error_line():
    import docker
    dead = docker.DockerClient(base_url="unix:///tmp/dockercourse-no-engine.sock", version="1.41")
    ex = ImageExplorer(dead)
    assert "Could not list images" in ex.error.value


def test_a_workdir_that_creates_its_folder_keeps_steps_paired(client, kit):
    """WORKDIR makes a layer only when the folder is new; history does not say so."""
    dockerfile = f"FROM {kit['busybox']}\nWORKDIR /brand-new\nRUN echo x > here.txt\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="course01/test-workdir",
                        labels=labels(1), rm=True)
    try:
        stack = layers(client, "course01/test-workdir")
        assert [l.step.split()[0] for l in stack[-2:]] == ["WORKDIR", "RUN"]
        assert which_layer(client, "course01/test-workdir", "/brand-new/here.txt").step \
            .startswith("RUN echo x")
    finally:
        client.images.remove("course01/test-workdir", force=True)
