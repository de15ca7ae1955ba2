"""Exercises, their reference solutions and their checks: one source for all three.

Each notebook's exercises live in `helpers/exercises/nbNN.py` and are registered with
`@exercise(...)`. A notebook shows one with `check_button("01.tag")`; tests run every check on an
untouched engine (it must fail and say what is missing) and after `solve()` (it must pass).
"""
from __future__ import annotations

import html
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from helpers.course.engine import EngineUnavailable, connect
from helpers.course.ui import Line, Panel, error_html, plain_words, status_html, status_text


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
    # What the exercise asks for by name: {"containers": [...], "images": [tags], "volumes":
    # [...], "networks": [...], "projects": [...]}. Clean-up removes these as the course's.
    names: dict = field(default_factory=dict)
    entry: str = ""              # what the Check panel's text field asks for ('' = no field)

    @property
    def notebook(self) -> str:
        return self.id.split(".")[0]


REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, task: str, hint: str, answer: str, solve: Callable,
             reset: Callable | None = None, names: dict | None = None, entry: str = ""):
    """Decorator for a check function: registers the exercise with its solution."""
    def register(check: Callable) -> Callable:
        REGISTRY[id] = Exercise(id, title, task, hint, answer, check, solve,
                                reset or (lambda client: None), names or {}, entry)
        return check
    return register


# What the learner typed into each exercise's text field, read by its check (`entered(id)`);
# a reference solution types its answer here too.
ENTERED: dict[str, str] = {}


def entered(id: str) -> str:
    return ENTERED.get(id, "").strip()


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


class CheckPanel(Panel):
    """The Check panel: the task, a Check button, a hint and the answer on request."""

    def __init__(self, id: str, field=None):
        import ipywidgets as w
        super().__init__()
        self.exercise = get(id)
        if field is None and self.exercise.entry:
            field = w.Text(placeholder=self.exercise.entry, layout=w.Layout(width="28em"))
        self.field = field          # an input the check reads, if the exercise has one
        self.output = w.HTML()
        self.check = self.button("check", self.on_check, "Check", button_style="primary",
                                 icon="check")
        self.button("hint", self.on_hint, "Hint", icon="lightbulb-o")
        self.button("answer", self.on_answer, "Show answer", icon="eye")
        ex = self.exercise
        header = w.HTML(f"<b>Exercise {html.escape(ex.id)}: {html.escape(ex.title)}</b><br>"
                        f"{ex.task}")
        self.layout(header, *([field] if field is not None else []),
                    w.HBox(list(self.buttons.values())), self.output)

    def on_check(self) -> None:
        self.status.value = ""
        if self.exercise.entry and self.field is not None:
            ENTERED[self.exercise.id] = self.field.value
        try:
            result = run_check(self.exercise.id)
        except EngineUnavailable as exc:
            self.output.value = error_html(str(exc))
            return
        except Exception as exc:  # a check never leaves a traceback wall
            self.output.value = error_html(f"The check could not inspect the engine: "
                                           f"{plain_words(exc)}")
            return
        verdict = status_html(True, "All done: well done!") if result.passed else \
            status_html(False, "Not yet: see what is missing above.")
        self.output.value = "".join(status_html(l.ok, l.text, l.fix) for l in result.lines) + \
            verdict

    def on_hint(self) -> None:
        self.output.value = (f"<div style='font-family:monospace;white-space:pre-wrap'>💡 "
                             f"{html.escape(self.exercise.hint)}</div>")

    def on_answer(self) -> None:
        self.output.value = f"<pre>{html.escape(self.exercise.answer)}</pre>"


def check_button(id: str, field=None) -> CheckPanel:
    """The Check panel of exercise `id` (`check_button("02.webapp")`)."""
    return CheckPanel(id, field)


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


class Quiz(Panel):
    """A notebook's quiz: one radio group per question, each answer explained on choosing."""

    def __init__(self, notebook: str):
        import ipywidgets as w
        super().__init__()
        all_exercises()
        self.items = []
        for q in [q for q in QUIZ.values() if q.id.split(".")[0] == notebook]:
            choice = w.RadioButtons(options=q.options, value=None, layout=w.Layout(width="auto"))
            out = w.HTML()
            choice.observe(lambda change, q=q, out=out: self.guarded(self.answer, q, out,
                                                                    change["new"]),
                           names="value")
            self.items.append(w.VBox([w.HTML(f"<b>{html.escape(q.question)}</b>"), choice,
                                      out]))
        self.layout(*self.items)

    @staticmethod
    def answer(q: "Question", out, chosen) -> None:
        if chosen is None:
            return
        ok = q.options.index(chosen) == q.correct
        out.value = status_html(ok, "Right." if ok else "Not quite.", "") + \
            f"<div style='margin-left:1.5em'>{html.escape(q.explanation)}</div>"


def quiz(notebook: str) -> Quiz:
    """The quiz of a notebook (`quiz("02")`)."""
    return Quiz(notebook)
