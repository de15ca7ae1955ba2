"""helpers.builder, the Dockerfile editor and the CMD/ENTRYPOINT table, against the real engine."""
import shutil

import pytest

from helpers.builder import build, explain, layer_chart, step_sizes
from helpers.charts import png
from helpers.dockerfile_editor import DockerfileEditor, prepare_lab, presets
from helpers.entrypoint_lab import EntrypointTable, try_combination
from helpers.labels import clean_up, label_filter


@pytest.fixture
def lab(tmp_path, client, kit):
    folder = prepare_lab(tmp_path / "lab")
    yield folder
    clean_up(3, client)


def made_by(result):
    """The images a build's steps made (FROM names the base image, which is not the build's)."""
    return {s.image_id for s in result.steps if s.image_id and s.keyword != "FROM"}


def still_there(client, short_ids):
    # Only this build's own images: other programs may build and remove images meanwhile.
    present = {i.split(":")[-1][:12] for i in client.api.images(all=True, quiet=True)}
    return set(short_ids) & present


def write(folder, text):
    (folder / "Dockerfile").write_text(text)


def test_build_marks_steps_rebuilt_then_cached(client, lab):
    write(lab, presets()["deps-first"])
    first = build(client, lab, tag="course03/test", nocache=True, progress=False)
    assert first.ok, first
    assert [s.kind for s in first.steps][0] == "base"
    assert first.cached == 0 and first.rebuilt == len(first.steps) - 1
    assert client.images.get("course03/test").labels["dockercourse.notebook"] == "03"
    second = build(client, lab, tag="course03/test", progress=False)
    assert second.ok and second.image_id == first.image_id
    assert second.rebuilt == 0 and second.cached == len(second.steps) - 1


def test_code_change_breaks_cache_from_its_copy_on(client, lab):
    editor = DockerfileEditor(client, lab)
    editor.load("deps-first")
    assert editor.build().ok
    editor.buttons["edit_app"].click()
    after = editor.build()
    kinds = {s.instruction.split()[0] + " " + s.instruction.split()[1]: s.kind
             for s in after.steps if s.keyword != "FROM"}
    assert kinds["RUN python"] == "cached", after.table()      # the slow step is kept
    assert kinds["COPY app.py"] == "rebuilt", after.table()

    editor.load("code-first")
    editor.buttons["build"].click()
    editor.buttons["edit_app"].click()
    editor.buttons["build"].click()
    reordered = editor.results[-1]
    run = next(s for s in reordered.steps if s.keyword == "RUN")
    assert run.kind == "rebuilt", reordered.table()            # COPY . first: the cache breaks
    assert "rebuilt" in editor.steps_view.value and "cached" in editor.steps_view.value
    assert editor.chart.value[:4] == b"\x89PNG"
    assert "Step 1/" in editor.log_view.value


@pytest.mark.parametrize("name, words", [
    ("broken-run", "not found in the image"),
    ("broken-copy", "not in the build context"),
    ("broken-syntax", "Docker does not know"),
])
def test_broken_dockerfile_explained_and_leaves_nothing(client, lab, name, words):
    editor = DockerfileEditor(client, lab)
    editor.load(name)
    result = editor.build(nocache=True)
    assert not result.ok
    assert words in result.explanation
    assert "✘" in editor.status.value and words in editor.status.value
    assert not still_there(client, made_by(result)), "a failed build left an image behind"
    assert not client.containers.list(all=True, filters={"ancestor": "python:3.11-slim",
                                                         "status": "created"})


def test_failed_build_removes_images_of_its_finished_steps(client, lab):
    write(lab, "FROM busybox:1.35\nRUN echo one > /one\nRUN echo two > /two\nRUN exit 3\n")
    result = build(client, lab, nocache=True, progress=False)
    assert not result.ok and "non-zero code" in result.error
    assert len(made_by(result)) == 2 and set(result.removed) == made_by(result)
    assert not still_there(client, made_by(result))


def test_missing_folder_and_missing_dockerfile(client, tmp_path):
    assert "does not exist" in build(client, tmp_path / "nowhere", progress=False).error
    empty = build(client, tmp_path, progress=False)
    assert not empty.ok and "no Dockerfile" in empty.explanation


def test_multistage_leaves_only_labelled_images(client, lab, tmp_path):
    from helpers.images import DATA
    context = tmp_path / "multi"
    shutil.copytree(DATA / "dockerfile-lab" / "multistage", context)
    final = build(client, context, tag="course03/site", progress=False)
    single = build(client, context, tag="course03/site:single",
                   dockerfile="single-stage.Dockerfile", progress=False)
    assert final.ok and single.ok
    small = client.images.get("course03/site").attrs["Size"]
    big = client.images.get("course03/site:single").attrs["Size"]
    assert small * 20 < big
    clean_up(3, client)
    assert not still_there(client, made_by(final) | made_by(single)), \
        "a stage's images outlived clean-up"


def test_layers_and_chart(client, lab):
    write(lab, presets()["deps-first"])
    result = build(client, lab, progress=False)
    base_bytes, sizes = step_sizes(client, result)
    run = next(s for s in result.steps if s.keyword == "RUN")
    assert sizes[run.number] > 1_000_000   # the byte-compiled standard library
    assert base_bytes > 100_000_000        # the base image's own layers: python:3.11-slim
    assert png(layer_chart(client, result))[:4] == b"\x89PNG"


def test_explain_pull_errors_without_pulling():
    assert "could not be pulled" in explain("pull access denied for nosuch, repository does "
                                            "not exist")
    assert "registry cannot be reached" in explain('Get "https://registry-1.docker.io/v2/": '
                                                   "dial tcp: lookup registry-1.docker.io: "
                                                   "no such host")


def test_entrypoint_table(client, kit):
    try:
        table = EntrypointTable(client)
        table.entrypoint.value, table.cmd.value = "exec", "exec"
        table.buttons["run"].click()
        trial = table.trials[("exec", "exec")]
        assert trial.started == ["echo", "from-ENTRYPOINT", "echo", "from-CMD"]
        assert trial.output == "from-ENTRYPOINT echo from-CMD"
        shell = table.run("shell", "exec", "")
        assert shell.started[:2] == ["/bin/sh", "-c"] and shell.output == "from-ENTRYPOINT"
        with_args = table.run("exec", "exec", "hi there")
        assert with_args.output == "from-ENTRYPOINT hi there"   # run args replace CMD
        missing = try_combination(client, "none", "none", "no-such-program")
        assert missing.error and "no-such-program" in missing.error
        assert "from-ENTRYPOINT" in table.grid.value and "Runs with arguments" in \
            table.with_args.value
        assert not client.containers.list(all=True, filters=label_filter(3))
    finally:
        clean_up(3, client)
