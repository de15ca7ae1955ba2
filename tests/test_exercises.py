"""Every Check fails on an untouched engine and passes on the reference solution."""
import pytest

from helpers.exercises import all_exercises, run_check
from helpers.course.labels import clean_up

EXERCISES = sorted(all_exercises())


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_check_fails_untouched_and_passes_on_solution(client, kit, exercise_id):
    ex = all_exercises()[exercise_id]
    ex.reset(client)
    clean_up(ex.notebook, client)
    try:
        untouched = run_check(exercise_id, client)
        assert not untouched.passed, f"{exercise_id} passes with nothing done:\n{untouched}"
        assert any(line.fix for line in untouched.lines if not line.ok), \
            "a failing check must say what to do"
        ex.solve(client)
        solved = run_check(exercise_id, client)
        assert solved.passed, f"{exercise_id} fails on the reference solution:\n{solved}"
    finally:
        ex.reset(client)
        clean_up(ex.notebook, client)


def test_every_exercise_has_hint_and_answer():
    for ex in all_exercises().values():
        assert ex.hint.strip() and ex.answer.strip() and ex.task.strip(), ex.id


def test_check_button_with_the_engine_stopped_says_what_to_start(monkeypatch, tmp_path):
    from helpers.exercises import check_button
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/stopped.sock")
    panel = check_button(EXERCISES[0])
    panel.check.click()
    assert "No Docker Engine answered" in panel.output.value
    assert "Traceback" not in panel.output.value


# ---------------------------------------------------------------- 01.layer: a diff ID in the field

@pytest.fixture
def mystery(client, kit):
    from helpers.exercises.nb01 import MYSTERY, prepare_mystery
    prepare_mystery(client)
    yield MYSTERY
    all_exercises()["01.layer"].reset(client)
    clean_up("01", client)


def test_01_layer_rejects_the_plausible_wrong_answers(client, mystery):
    from helpers.exercises import ENTERED
    from helpers.exercises.nb01 import CONF, SECRET_FILE
    from helpers.course.layers import layer_files, which_layer
    right = which_layer(client, mystery, SECRET_FILE)
    last_in_folder = [f for f in layer_files(client, mystery)
                      if any(p.startswith(CONF + "/") for p in f.added + f.changed)][-1]
    assert last_in_folder.layer != right and last_in_folder.changed == [f"{CONF}/app.ini"]
    image_id = client.images.get(mystery).id
    wrong = {last_in_folder.layer.short_id: "changed /opt/app/conf/app.ini",
             image_id: "the image's ID", "not-an-id": "is not a diff ID",
             "0123456789ab": "no layer of", "": "the field is empty"}
    for typed, said in wrong.items():
        ENTERED["01.layer"] = typed
        result = run_check("01.layer", client)
        assert not result.passed and said in str(result), (typed, str(result))
    for typed in (right.short_id, right.diff_id, f" {right.diff_id.upper()} "):
        ENTERED["01.layer"] = typed
        assert run_check("01.layer", client).passed, typed


def test_01_layer_panel_takes_the_diff_id_and_shows_the_answer(client, mystery):
    from helpers.exercises import check_button, get
    from helpers.exercises.nb01 import SECRET_FILE
    from helpers.course.layers import which_layer
    panel = check_button("01.layer")
    panel.check.click()
    assert "the field is empty" in panel.output.value and "Not yet" in panel.output.value
    panel.field.value = "sha256:" + which_layer(client, mystery, SECRET_FILE).short_id
    panel.check.click()
    assert "All done" in panel.output.value
    ex = get("01.layer")
    assert ex.answer.splitlines()[0] not in ex.hint   # the hint points the way, no more
    panel.buttons["answer"].click()
    assert "docker save" in panel.output.value and "which_layer(client" in panel.output.value


def test_03_check_explains_a_build_that_fails(client, kit):
    """The learner's Dockerfile does not build: the Check says why, in plain words."""
    from helpers.exercises.nb03 import WORK, prepare
    prepare(WORK)
    dockerfile = WORK / "Dockerfile"
    before = dockerfile.read_text()
    try:
        dockerfile.write_text("FROM python:3.11-slim\nWORKDIR /app\nCOPPY app.py ./\n")
        result = run_check("03.nonroot", client)
        assert not result.passed and len(result.lines) == 1
        line = result.lines[0]
        assert line.text.startswith("the build failed (") and "COPPY" in line.text
        assert "Docker does not know" in line.fix
    finally:
        dockerfile.write_text(before)
        clean_up(3, client)


# ---------------------------------------------------------------- 07.capped: a VM's fixed budget

@pytest.fixture
def capped(client, kit):
    ex = all_exercises()["07.capped"]
    ex.reset(client)
    yield ex
    ex.reset(client)
    clean_up("07", client)


def test_07_capped_rejects_each_named_wrong_attempt_and_passes_the_cli_and_sdk_answers(client,
                                                                                      capped):
    from helpers.course.cli import run
    from helpers.exercises.nb07 import ANSWER_SDK, WRONG
    untouched = run_check("07.capped", client)
    assert not untouched.passed and "no container is named course07-capped" in str(untouched)
    said = {"memory alone": "it can still swap", "a memory reservation": "not a cap",
            "CPU shares": "no cap"}
    swap_limits = client.info().get("SwapLimit", True)
    for name, command in WRONG.items():
        assert name in capped.task, f"{name!r} is not named in the exercise"
        if name == "memory alone" and not swap_limits:
            continue          # a kernel without swap accounting cannot tell these apart
        run(command, echo=False)
        try:
            result = run_check("07.capped", client)
            assert not result.passed and said[name] in str(result), (name, str(result))
        finally:
            capped.reset(client)
    capped.solve(client)                                      # the answer's CLI half
    assert run_check("07.capped", client).passed
    capped.reset(client)
    exec(ANSWER_SDK, {"client": client})                      # the answer's Python half
    result = run_check("07.capped", client)
    assert result.passed and "the kernel enforces 128 MiB in its cgroup" in str(result)


def test_07_capped_wants_it_running_so_that_the_kernel_can_be_asked(client, capped):
    """A container with the right limits that has exited: its cgroup is gone, so it fails."""
    from helpers.course.cli import run
    from helpers.exercises.nb07 import ANSWER_CLI
    run(ANSWER_CLI.replace("sleep 3600", "true").replace(" -d ", " "), echo=False)
    result = run_check("07.capped", client)
    assert not result.passed and "is exited" in str(result)
