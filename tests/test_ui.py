"""The one look: tables that escape, plain words for errors, progress text, the panel guard.
Fast tier: no engine."""
import importlib
import inspect
import pkgutil

import docker
import pytest
import requests

import helpers
from helpers.course import ui
from helpers.course.engine import EngineUnavailable


def test_html_table_escapes_every_cell():
    table = ui.html_table(["<b>name</b>"], [["<script>alert(1)</script>"], ["<that IMAGE ID>"]])
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert "&lt;that IMAGE ID&gt;" in table and "&lt;b&gt;name&lt;/b&gt;" in table


@pytest.mark.parametrize("exc,words", [
    (EngineUnavailable("No Docker Engine answered at unix:///x. Start it."), "No Docker Engine"),
    (requests.exceptions.ConnectionError("Connection aborted"), "stopped answering"),
    (docker.errors.ImageNotFound("No such image: course02.invalid/x"), "not on this engine"),
    (docker.errors.APIError("409 conflict"), "The engine refused"),
    (TimeoutError("60 s"), "took too long"),
    (ValueError("bad port"), "ValueError: bad port"),
])
def test_plain_words_say_what_happened(exc, words):
    text = ui.plain_words(exc)
    assert words in text and "Traceback" not in text


def test_progress_text_in_a_terminal(capsys):
    bar = ui.Progress("build", 4, "steps")
    bar.update(2, caption="step 2/4")
    bar.close(caption="done")
    out = capsys.readouterr().out
    assert "build [" in out and "4/4 steps" in out and "done" in out


def test_status_lines_for_each_state():
    assert "✔" in ui.status_text(True, "ok") and "✘" in ui.status_text(False, "no")
    assert "▲" in ui.status_html("warn", "old engine")
    assert "&lt;x&gt;" in ui.status_html(True, "<x>", "<y>")


def panel_classes():
    """Every Panel subclass in the helpers package (each module imported)."""
    for mod in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)
    found, todo = set(), [ui.Panel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("helpers.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_widget_classes_in_the_panels_all_use_the_base():
    """No class that shows widgets skips the Panel base (the one guard, the one status line)."""
    import ipywidgets
    skipped = []
    for mod in pkgutil.walk_packages(helpers.__path__, "helpers."):
        module = importlib.import_module(mod.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or issubclass(cls, ui.Panel):
                continue
            if issubclass(cls, ipywidgets.Widget) or "widget" in vars(cls) or \
                    "_ipython_display_" in vars(cls):
                skipped.append(f"{module.__name__}.{name}")
    assert skipped == [], f"these show widgets without the Panel base: {skipped}"
