"""Exercises, their reference solutions and their checks: one source for all three.

Each notebook's exercises live in `helpers/exercises/nbNN.py` and are registered with
`@exercise(...)`. A notebook shows one with `check_button("01.tag")`; tests run every check on an
untouched engine (it must fail and say what is missing) and after `solve()` (it must pass).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from ..engine import EngineUnavailable, connect
from ..ui import error_html, status_html, status_text


@dataclass
class Line:
    ok: bool
    text: str
    fix: str = ""


@dataclass
class Result:
    lines: list

    @property
    def passed(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)

    def __str__(self) -> str:
        return "\n".join(status_text(l.ok, l.text, l.fix) for l in self.lines)


@dataclass
class Exercise:
    id: str                      # "NN.short-name"
    title: str
    task: str                    # what the learner is asked to do
    hint: str
    answer: str                  # the reference solution as the learner would type it (CLI/SDK)
    check: Callable              # check(client) -> list[Line]
    solve: Callable              # solve(client): applies the reference solution to the engine
    reset: Callable = field(default=lambda client: None)  # removes what the exercise asked for

    @property
    def notebook(self) -> str:
        return self.id.split(".")[0]


REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, task: str, hint: str, answer: str, solve: Callable,
             reset: Callable | None = None):
    """Decorator for a check function: registers the exercise with its solution."""
    def register(check: Callable) -> Callable:
        REGISTRY[id] = Exercise(id, title, task, hint, answer, check, solve,
                                reset or (lambda client: None))
        return check
    return register


def all_exercises() -> dict[str, Exercise]:
    """Every exercise of every notebook (imports each helpers/exercises/nbNN.py)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY


def get(id: str) -> Exercise:
    return all_exercises()[id]


def run_check(id: str, client=None) -> Result:
    """Inspect the real engine and say what is right and what is missing."""
    client = client or connect()
    return Result(get(id).check(client))


def hint(id: str) -> str:
    return get(id).hint


def answer(id: str) -> str:
    return get(id).answer


def check_button(id: str):
    """The Check panel: the task, a Check button, a hint and an answer on request."""
    import ipywidgets as w
    ex = get(id)
    out = w.HTML()
    check = w.Button(description="Check", button_style="primary", icon="check")
    show_hint = w.Button(description="Hint", icon="lightbulb-o")
    show_answer = w.Button(description="Show answer", icon="eye")

    def on_check(_):
        try:
            result = run_check(id)
        except EngineUnavailable as exc:
            out.value = error_html(str(exc))
            return
        except Exception as exc:  # a check must never leave a traceback wall
            out.value = error_html(f"The check could not inspect the engine: {exc}")
            return
        verdict = status_html(True, "All done: well done!") if result.passed else \
            status_html(False, "Not yet: see what is missing above.")
        out.value = "".join(status_html(l.ok, l.text, l.fix) for l in result.lines) + verdict

    def on_hint(_):
        out.value = f"<div style='font-family:monospace;white-space:pre-wrap'>💡 {ex.hint}</div>"

    def on_answer(_):
        out.value = f"<pre>{ex.answer}</pre>"

    check.on_click(on_check)
    show_hint.on_click(on_hint)
    show_answer.on_click(on_answer)
    header = w.HTML(f"<b>Exercise {ex.id}: {ex.title}</b><br>{ex.task}")
    panel = w.VBox([header, w.HBox([check, show_hint, show_answer]), out])
    panel.check, panel.output = check, out  # handles for tests
    return panel


@dataclass
class Question:
    id: str
    question: str
    options: list
    correct: int
    explanation: str


QUIZ: dict[str, Question] = {}


def question(id: str, question: str, options: list, correct: int, explanation: str) -> None:
    """Register a quiz question (`NN.short-name`) beside the notebook's exercises."""
    QUIZ[id] = Question(id, question, options, correct, explanation)


def quiz(notebook: str):
    """The quiz of a notebook: one radio group per question, answers explained on submit."""
    import ipywidgets as w
    all_exercises()
    items = []
    for q in [q for q in QUIZ.values() if q.id.split(".")[0] == notebook]:
        choice = w.RadioButtons(options=q.options, value=None, layout=w.Layout(width="auto"))
        out = w.HTML()

        def on_change(change, q=q, out=out):
            if change["new"] is None:
                return
            ok = q.options.index(change["new"]) == q.correct
            out.value = status_html(ok, "Right." if ok else "Not quite.", "") + \
                f"<div style='margin-left:1.5em'>{q.explanation}</div>"

        choice.observe(on_change, names="value")
        items.append(w.VBox([w.HTML(f"<b>{q.question}</b>"), choice, out]))
    return w.VBox(items)
