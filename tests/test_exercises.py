"""Every Check fails on an untouched engine and passes on the reference solution."""
import pytest

from helpers.exercises import all_exercises, run_check
from helpers.labels import clean_up

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
