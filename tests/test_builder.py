"""helpers.course.builder (BuildKit and the legacy builder), the Dockerfile editor and the CMD/ENTRYPOINT
table: recorded build streams parsed offline, then real builds on the real engine."""
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from helpers.course import builder as builder_module
from helpers.course.buildkit import Trace, builder_info, read_events
from helpers.course.builder import (Fence, LegacyTrace, build, explain, layer_chart, learner_fence, stages, step_sizes)
from helpers.measure.charts import png
from helpers.labs.dockerfile_editor import DockerfileEditor, prepare_lab, presets
from helpers.labs.entrypoint_lab import EntrypointTable, try_combination
from helpers.course.settings import DATA
from helpers.course.lesson import Lesson
from helpers.course.labels import labels, clean_up, label_filter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "builds"


def recorded(name):
    """A recorded build stream (tests/fixtures/builds/record.py wrote it)."""
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


def replay(name):
    trace, shown = Trace(), []
    for event in read_events(recorded(name)):
        shown += trace.feed(event)[0]
    return trace, shown


@pytest.fixture
def buildkit(client):
    """BuildKit through the docker CLI (connect() has pointed the CLI at the engine)."""
    if builder_info() is None:
        pytest.skip("the docker CLI here has no buildx plugin")


# ------------------------------------------------------------------ recorded streams

def test_rawjson_cold_build_gives_buildkit_steps_in_order():
    trace, shown = replay("buildkit-cold")
    steps = trace.steps()
    assert [v.name for v in steps] == [
        "[1/4] FROM docker.io/library/busybox:1.35",
        '[2/4] RUN echo "hello from RUN" && sleep 0.5 && echo done > /done.txt',
        "[3/4] WORKDIR /app", "[4/4] COPY note.txt ./"]
    run = steps[1]
    assert not run.cached and run.seconds >= 0.5 and run.output == ["hello from RUN"]
    assert f"#{run.number} {run.name}" in shown and f"#{run.number} DONE" in "\n".join(shown)
    assert any(line.endswith("hello from RUN") and line.startswith(f"#{run.number} 0.")
               for line in shown)
    assert trace.error() == ""


def test_rawjson_cached_rebuild_marks_every_step_cached():
    trace, shown = replay("buildkit-cached")
    steps = [v for v in trace.steps() if not v.step["instruction"].startswith("FROM")]
    assert len(steps) == 3 and all(v.cached and v.seconds < 0.01 for v in steps)
    assert sum(line.endswith(" CACHED") for line in shown) == 3


def test_rawjson_failing_run_keeps_its_output_and_error():
    trace, shown = replay("buildkit-failing-run")
    failed = [v for v in trace.steps() if v.error]
    assert len(failed) == 1 and failed[0].step["number"] == "3"
    assert failed[0].output == ["about to fail", "oops on stderr"]
    assert trace.error().startswith("failed to solve: process ")
    assert trace.error().endswith("did not complete successfully: exit code: 3")
    assert "A RUN command failed" in explain(trace.error(), "\n".join(failed[0].output))
    assert "   3 | >>> RUN echo \"about to fail\"" in " ".join(shown)  # buildx's excerpt


def test_rawjson_syntax_error_has_no_steps():
    trace, _ = replay("buildkit-syntax-error")
    assert trace.steps() == []
    assert "dockerfile parse error on line 2: unknown instruction: COPPY" in trace.error()
    assert "Docker does not know" in explain(trace.error())


def test_rawjson_cut_off_mid_object_does_not_break():
    lines = recorded("buildkit-cold")
    cut = lines[:len(lines) // 2]
    while cut[-1].startswith("}"):
        cut.pop()
    events = list(read_events(cut))
    assert isinstance(events[0], dict) and isinstance(events[-1], str)  # the rest as text


def test_legacy_stream_gives_steps_with_cache_marks():
    trace, finished = LegacyTrace(), []
    for event in recorded("legacy-cold"):
        finished += trace.feed(event)[1]
    finished += trace.end()
    assert [s.instruction for s in trace.steps][:3] == [
        "FROM busybox:1.35", "ENV GREETING=hello",
        'RUN echo "hello from RUN" && sleep 0.5 && echo done > /done.txt']
    assert trace.steps[-1].added_by_course       # the LABEL step for labels=
    assert finished == trace.steps and not any(s.cached for s in trace.steps[1:])
    assert trace.steps[2].output == ["hello from RUN"] and trace.image_id.startswith("sha256:")


def test_stages_of_a_dockerfile():
    found = stages((DATA / "dockerfile-lab" / "multistage" / "Dockerfile").read_text())
    assert [(s.base, s.alias, s.name(2)) for s in found] == [
        ("python:3.11-slim", "build", "build"), ("busybox:1.35", "", "stage-1")]
    assert [k for k, _ in found[1].instructions] == ["COPY", "EXPOSE", "CMD"]
    joined = stages("FROM a\nRUN one \\\n  two\n# note\nENV A=1\n")[0].instructions
    assert joined == [("RUN", "RUN one two"), ("ENV", "ENV A=1")]


def test_explain_pull_errors_without_pulling():
    assert "could not be pulled" in explain("pull access denied for nosuch, repository does "
                                            "not exist")
    assert "registry cannot be reached" in explain('Get "https://registry-1.docker.io/v2/": '
                                                   "dial tcp: lookup registry-1.docker.io: "
                                                   "no such host")
    assert "could not be pulled" in explain("failed to solve: nosuch:1: failed to resolve "
                                            "source metadata for docker.io/library/nosuch:1")


# ------------------------------------------------------------------ real builds

@pytest.fixture
def lab(tmp_path, client, kit):
    folder = prepare_lab(tmp_path / "lab")
    yield folder
    clean_up(3, client)


def write(folder, text):
    (folder / "Dockerfile").write_text(text)


def made_by(result):
    """The images a legacy build's steps kept (FROM names the base image, not the build's)."""
    return {s.image_id for s in result.steps if s.image_id and s.keyword != "FROM"}


def still_there(client, short_ids):
    # Only this build's own images: other programs may build and remove images meanwhile.
    present = {i.split(":")[-1][:12] for i in client.api.images(all=True, quiet=True)}
    return set(short_ids) & present


def no_such_image(client, ref):
    return not client.images.list(name=ref)


def test_buildkit_marks_steps_rebuilt_then_cached(client, buildkit, lab):
    write(lab, presets()["deps-first"])
    first = build(client, lab, labels=labels(3), tag="course03.invalid/test", nocache=True, progress=False)
    assert first.ok, first
    assert first.builder.startswith("BuildKit (docker buildx 0.") and first.buildkit
    # BuildKit's --no-cache does not reach WORKDIR, which may still say CACHED (moby#38255)
    assert [s.kind for s in first.steps if s.keyword != "WORKDIR"] == ["base", "rebuilt",
                                                                       "rebuilt", "rebuilt"]
    assert first.steps[1].name == "[2/5] WORKDIR /app"
    assert any(line.startswith("#") and "[4/5] RUN python -m compileall" in line
               for line in first.log)
    assert client.images.get("course03.invalid/test").labels["dockercourse.notebook"] == "03"
    second = build(client, lab, labels=labels(3), tag="course03.invalid/test", progress=False)
    assert second.ok and second.image_id == first.image_id
    assert second.rebuilt == 0 and second.cached == 4   # WORKDIR, COPY, RUN, COPY
    assert any(line.endswith(" CACHED") for line in second.log)


def check_pairing(client, result, base):
    """Every step of the image's own stage paired with its history entry; RUN, COPY and
    WORKDIR with a layer, in the order of the image's own layers; the rest with none."""
    own = [s for s in result.steps if s.history]
    assert [s.keyword for s in own] == ["ENV", "RUN", "LABEL", "WORKDIR", "COPY", "EXPOSE",
                                        "CMD", *(["LABEL"] if not result.buildkit else [])]
    for step in own:
        if step.keyword in ("RUN", "COPY", "WORKDIR"):
            assert step.layer is not None, step
        else:
            assert step.layer is None and step.layer_text == "no layer", step
    made = [s.layer.diff_id for s in own if s.layer is not None]
    layers = client.images.get(result.image_id).attrs["RootFS"]["Layers"]
    below = client.images.get(base).attrs["RootFS"]["Layers"]
    assert layers == below + made   # the build's layers sit on the base image's, in order
    run = next(s for s in own if s.keyword == "RUN")
    assert run.layer.size_bytes > 0 and "hello from RUN" in run.history
    assert result.base_bytes == sum(int(x["Size"]) for x in client.api.history(base)) > 0


@pytest.mark.parametrize("builder", ["buildkit", "legacy"])
def test_steps_paired_with_history_and_layers(client, kit, tmp_path, builder):
    if builder == "buildkit" and builder_info() is None:
        pytest.skip("the docker CLI here has no buildx plugin")
    shutil.copy(FIXTURES / "meta.Dockerfile", tmp_path / "Dockerfile")
    (tmp_path / "note.txt").write_text(f"{uuid.uuid4()}\n")  # a new layer for this run
    try:
        cold = build(client, tmp_path, labels=labels(3), tag="course03.invalid/paired", progress=False, builder=builder,
                     layers=True)
        assert cold.ok, cold
        assert cold.buildkit == (builder == "buildkit")
        check_pairing(client, cold, kit["busybox"])
        config = [s for s in cold.steps if s.config_only]
        if builder == "buildkit":  # BuildKit shows no step for them: they come from history
            assert [s.instruction for s in config] == [
                "ENV GREETING=hello", "LABEL course.example=fixture", "EXPOSE 8080",
                'CMD ["cat", "/app/note.txt"]']
            assert "no layer" in cold.table() and "config" in cold.table()
        again = build(client, tmp_path, labels=labels(3), tag="course03.invalid/paired", progress=False,
                      builder=builder, layers=True)
        assert again.ok and again.image_id == cold.image_id and again.rebuilt == 0
        check_pairing(client, again, kit["busybox"])
        assert [s.layer.diff_id for s in again.steps if s.layer] == \
            [s.layer.diff_id for s in cold.steps if s.layer]
        base, sizes = step_sizes(client, again)
        assert base == again.base_bytes and len(sizes) == 3
        assert png(layer_chart(client, again))[:4] == b"\x89PNG"
    finally:
        clean_up(3, client)


def test_legacy_builder_still_builds(client, lab):
    write(lab, presets()["deps-first"])
    result = build(client, lab, labels=labels(3), tag="course03.invalid/legacy", progress=False, builder="legacy")
    assert result.ok, result
    assert result.builder == "legacy builder" and not result.buildkit
    assert result.log[0] == "Step 1/7 : FROM python:3.11-slim"  # 7: the course's LABEL step
    assert result.steps[-1].added_by_course
    assert client.images.get("course03.invalid/legacy").labels["dockercourse.notebook"] == "03"
    assert "512.0 MiB of memory per step" in result.fence.describe()
    assert "Missing: no process cap and no ulimits" in result.fence.describe()


def test_without_buildx_the_legacy_builder_runs(client, lab, tmp_path, monkeypatch):
    """A docker CLI without the buildx plugin (Engine 20.10's packages): the legacy builder."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "plain-cli-config"))
    assert builder_info() is None
    write(lab, "FROM busybox:1.35\nRUN echo built\n")
    result = build(client, lab, labels=labels(3), tag="course03.invalid/fallback", progress=False)
    assert result.ok and result.builder == "legacy builder", result
    assert "Step 2/3 : RUN echo built" in result.log


@pytest.mark.parametrize("name, words", [
    ("broken-run", "not found in the image"),
    ("broken-copy", "not in the build context"),
    ("broken-syntax", "Docker does not know"),
])
def test_broken_dockerfile_explained_and_leaves_nothing(client, lab, name, words):
    editor = DockerfileEditor(lab, tag="course03.invalid/broken", lesson=Lesson(3))
    editor.load(name)
    started = time.time()
    result = editor.build(nocache=True)
    assert not result.ok
    assert words in result.explanation
    assert "✘" in editor.status.value and words in editor.status.value
    assert result.builder in editor.status.value and "Limits:" in editor.status.value
    assert no_such_image(client, "course03.invalid/broken")
    assert not still_there(client, made_by(result)), "a failed build left an image behind"
    leftovers = [c for c in client.containers.list(all=True, filters={"ancestor":
                                                                      "python:3.11-slim"})
                 if "pyhton" in " ".join(c.attrs["Config"].get("Cmd") or [])]
    assert not leftovers
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
    assert not [i for i in client.images.list(filters=label_filter(3))
                if i.attrs["Created"] >= since]
    if result.buildkit:
        assert "BuildKit made no image" in editor.status.value


def test_failed_legacy_build_removes_images_of_its_finished_steps(client, lab):
    write(lab, "FROM busybox:1.35\nRUN echo one > /one\nRUN echo two > /two\nRUN exit 3\n")
    result = build(client, lab, labels=labels(3), nocache=True, progress=False, builder="legacy")
    assert not result.ok and "non-zero code" in result.error
    assert len(made_by(result)) == 2 and set(result.removed) == made_by(result)
    assert not still_there(client, made_by(result))
    assert "removed those 2" in result.leftovers


def test_missing_folder_and_missing_dockerfile(client, tmp_path):
    assert "does not exist" in build(client, tmp_path / "nowhere", labels=labels(3), progress=False).error
    empty = build(client, tmp_path, labels=labels(3), progress=False)
    assert not empty.ok and "no Dockerfile" in empty.explanation


def test_missing_from_image_says_what_makes_it(client, lab):
    write(lab, "FROM course03.invalid/never-built:1\nRUN true\n")
    started = time.monotonic()
    result = build(client, lab, labels=labels(3), progress=False)
    assert not result.ok and time.monotonic() - started < 20   # no pull hangs
    assert result.missing_images == ["course03.invalid/never-built:1"]
    assert "built in notebook 03" in result.explanation
    assert "docker build -t course03.invalid/never-built:1" in result.explanation
    write(lab, "FROM nosuch-image-here:1\nRUN true\n")
    other = build(client, lab, labels=labels(3), progress=False)
    assert "`docker images`" in other.explanation


def test_multistage_leaves_only_labelled_images(client, lab, tmp_path):
    context = tmp_path / "multi"
    shutil.copytree(DATA / "dockerfile-lab" / "multistage", context)
    final = build(client, context, labels=labels(3), tag="course03.invalid/site", progress=False, layers=True)
    single = build(client, context, labels=labels(3), tag="course03.invalid/site:single",
                   dockerfile="single-stage.Dockerfile", progress=False)
    assert final.ok and single.ok
    stages_seen = {s.stage for s in final.steps}
    if final.buildkit:
        assert stages_seen == {"build", "stage-1"}
        assert [s.keyword for s in final.steps if s.history] == ["COPY", "EXPOSE", "CMD"]
    small = client.images.get("course03.invalid/site").attrs["Size"]
    big = client.images.get("course03.invalid/site:single").attrs["Size"]
    assert small * 20 < big
    clean_up(3, client)
    assert not still_there(client, made_by(final) | made_by(single)), \
        "a stage's images outlived clean-up"


def test_layers_and_chart(client, lab):
    write(lab, presets()["deps-first"])
    result = build(client, lab, labels=labels(3), progress=False, layers=True)
    base_bytes, sizes = step_sizes(client, result)
    run = next(i for i, s in enumerate(result.steps) if s.keyword == "RUN")
    assert base_bytes > 100_000_000        # the base image's own layers: python:3.11-slim
    assert sizes[run] > 1_000_000, (
        "the slow step compiled next to nothing: python:3.11-slim has no standard library in "
        "/usr/local/lib/python3.11 (an old local stand-in: rebuild the image kit)")
    assert png(layer_chart(client, result))[:4] == b"\x89PNG"


def test_code_change_breaks_cache_from_its_copy_on(client, lab):
    editor = DockerfileEditor(lab, lesson=Lesson(3))
    editor.load("deps-first")
    assert editor.build().ok
    editor.buttons["edit_app"].click()
    after = editor.build()
    kinds = {" ".join(s.instruction.split()[:2]): s.kind for s in after.steps
             if s.keyword != "FROM"}
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
    assert "no layer" in editor.steps_view.value                # CMD: config only
    assert editor.chart.value[:4] == b"\x89PNG"
    assert reordered.builder in editor.status.value and "Limits:" in editor.status.value
    first_line = "#1 " if reordered.buildkit else "Step 1/"
    assert first_line in editor.log_view.value


# ------------------------------------------------------------------ the fence

def processes_with(words):
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if words in line]


@pytest.mark.parametrize("builder", ["buildkit", "legacy"])
def test_timeout_stops_an_endless_run_and_leaves_nothing(client, lab, monkeypatch, builder):
    if builder == "buildkit" and builder_info() is None:
        pytest.skip("the docker CLI here has no buildx plugin")
    monkeypatch.setenv("DOCKERCOURSE_FENCE_SECONDS", "4")
    seconds = 50000 + uuid.uuid4().int % 40000   # a sleep no other process runs
    write(lab, f"FROM busybox:1.35\nRUN echo endless; sleep {seconds} & sleep {seconds + 1}\n")
    started = time.monotonic()
    result = build(client, lab, labels=labels(3), tag="course03.invalid/endless", nocache=True, progress=False,
                   builder=builder)
    took = time.monotonic() - started
    assert result.timed_out and not result.ok and 4 <= took < 12, (took, result)
    assert "longer than 4 s" in result.error
    assert "DOCKERCOURSE_FENCE_SECONDS" in result.explanation
    assert no_such_image(client, "course03.invalid/endless")
    if client.api.base_url.startswith("http+docker://"):  # the engine runs on this machine
        deadline = time.monotonic() + 5
        while processes_with(f"sleep {seconds}") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processes_with(f"sleep {seconds}"), "the step's processes outlived the build"
        assert not [p for p in processes_with("buildx build") if "course03.invalid/endless" in p]
    assert not [c for c in client.containers.list(all=True, ignore_removed=True)
                if str(seconds) in " ".join(c.attrs["Config"].get("Cmd") or [])]
    assert client.ping()
    write(lab, "FROM busybox:1.35\nRUN echo after\n")
    assert build(client, lab, labels=labels(3), progress=False, builder=builder).ok   # the engine builds again


def test_ulimits_apply_to_run_steps(client, buildkit, lab):
    fence = learner_fence(client, buildkit=True)
    if not fence.ulimits:  # Engine 20.10's BuildKit: the panel says the limit is missing
        assert "ignores --ulimit" in fence.describe()
        return
    write(lab, "FROM busybox:1.35\nRUN ulimit -n; ulimit -u\n")
    result = build(client, lab, labels=labels(3), nocache=True, progress=False)
    assert result.ok, result
    run = next(s for s in result.steps if s.keyword == "RUN")
    assert run.output == ["1024", "1024"]
    assert "ulimit nofile=1024, nproc=1024" in result.fence.describe()


FORK_BOMB = ("FROM busybox:1.35\n"
             "RUN n=0; while [ $n -lt 600 ]; do sleep 20 & n=$((n+1)); done; "
             "echo started $(ls -d /proc/[0-9]* | wc -l); kill -9 -1; true\n")


def test_cgroup_parent_holds_a_fork_bomb(client, buildkit, lab):
    fence = learner_fence(client, buildkit=True)
    if not fence.cgroup_parent:  # not the course's engine, or 20.10: the panel says so
        assert "Missing: no" in fence.describe() and "processes or memory" in fence.describe()
        return
    write(lab, FORK_BOMB)
    started = time.monotonic()
    held = build(client, lab, labels=labels(3), nocache=True, progress=False)
    assert not held.ok and time.monotonic() - started < 30
    assert "cgroup /dockercourse-builds (at most 512 processes" in held.fence.describe()
    failed = next(s for s in held.steps if s.error)
    assert "can't fork" in "\n".join(failed.output)
    assert "more processes than the build may have" in held.explanation
    # The same step without the cgroup starts all 600: the cgroup is what held it.
    free = build(client, lab, labels=labels(3), nocache=True, progress=False,
                 fence=Fence(seconds=30, ulimits={"nofile": (1024, 1024)}))
    assert free.ok, free
    assert any(line.startswith("started ") and int(line.split()[1]) > 600
               for s in free.steps for line in s.output)


def test_fence_names_what_is_missing(client, monkeypatch):
    monkeypatch.setattr("helpers.course.own_engine.build_cgroup_parent", lambda: "")
    monkeypatch.setattr(builder_module, "_engine_major", lambda client: 26)  # as on Engine 26
    fence = learner_fence(client, buildkit=True)
    assert fence.cgroup_parent == "" and "Missing: no cap on processes or memory" in \
        fence.describe()
    assert fence.seconds and fence.ulimits
    monkeypatch.setattr(builder_module, "_engine_major", lambda client: 20)
    monkeypatch.setattr("helpers.course.own_engine.build_cgroup_parent", lambda: "/dockercourse-builds")
    old = learner_fence(client, buildkit=True)
    assert not old.cgroup_parent and not old.ulimits and old.seconds
    assert "ignores --ulimit and --cgroup-parent" in old.describe()


def test_entrypoint_table(client, kit):
    try:
        table = EntrypointTable(lesson=Lesson(3))
        table.entrypoint.value, table.cmd.value = "exec", "exec"
        table.buttons["run"].click()
        trial = table.trials[("exec", "exec")]
        assert trial.started == ["echo", "from-ENTRYPOINT", "echo", "from-CMD"]
        assert trial.output == "from-ENTRYPOINT echo from-CMD"
        shell = table.run("shell", "exec", "")
        assert shell.started[:2] == ["/bin/sh", "-c"] and shell.output == "from-ENTRYPOINT"
        with_args = table.run("exec", "exec", "hi there")
        assert with_args.output == "from-ENTRYPOINT hi there"   # run args replace CMD
        missing = try_combination("none", "none", "no-such-program", lesson=Lesson(3))
        assert missing.error and "no-such-program" in missing.error
        assert "from-ENTRYPOINT" in table.grid.value and "Runs with arguments" in \
            table.with_args.value
        assert not client.containers.list(all=True, filters=label_filter(3))
    finally:
        clean_up(3, client)
