"""Every panel, every button: an exception in any callback shows in that panel, in plain words;
and the engine's loss, for real: each panel answers with what to do, and works again once the
engine is back, without a kernel restart."""
import pytest

from helpers.course import own_engine
from helpers.course.lesson import Lesson
from helpers.course.ui import Panel
from test_ui import panel_classes


def explorer_with_a_path(explorer):
    explorer.path.value = "/bin/sh"
    return explorer


def factories(kit):
    """How to make each panel for a test (a new panel must be added here)."""
    from helpers.labs.dashboard import Dashboard
    from helpers.exercises import CheckPanel, Quiz
    from helpers.labs.explorer import ImageExplorer
    from helpers.labs.lifecycle import LifecyclePanel
    from helpers.labs.port_publisher import PortPublisher
    from helpers.labs.preflight import Preflight
    from helpers.course.compose import Stack
    from helpers.labs.dockerfile_editor import DockerfileEditor
    from helpers.labs.entrypoint_lab import EntrypointTable
    from helpers.labs.health_panel import HealthPanel
    from helpers.labs.live_panel import LivePanel
    from helpers.course.settings import DATA
    from helpers.labs.stack_panel import ProjectPanel, StackPanel
    from helpers.labs.volumes import VolumeBrowser, VolumeLab
    lesson = Lesson(99)
    stack = lambda: Stack([DATA / "compose" / "05" / "compose.yaml"], "course05",
                          lesson=Lesson(5))
    return {
        DockerfileEditor: lambda: DockerfileEditor(samples={}, tag="course99.invalid/panel",
                                                   lesson=lesson),
        EntrypointTable: lambda: EntrypointTable(lesson=lesson),
        LivePanel: lambda: LivePanel(lesson=lesson),
        VolumeLab: lambda: VolumeLab(volume="course99-panel", lesson=lesson),
        VolumeBrowser: lambda: VolumeBrowser(lesson=lesson),
        ProjectPanel: lambda: ProjectPanel(stack()),
        StackPanel: lambda: StackPanel(stack(), live_seconds=0),
        HealthPanel: lambda: HealthPanel(stack(), live_seconds=0),
        Dashboard: lambda: Dashboard(lesson=lesson, nn=99),
        CheckPanel: lambda: CheckPanel("02.webapp"),
        Quiz: lambda: Quiz("02"),
        ImageExplorer: lambda: explorer_with_a_path(ImageExplorer(lesson.client,
                                                                  image=kit["busybox"])),
        LifecyclePanel: lambda: LifecyclePanel(kit["busybox"], lesson=lesson,
                                               name="course99-panel-lifecycle"),
        PortPublisher: lambda: PortPublisher(kit["busybox"], 8080, lesson=lesson),
        Preflight: lambda: Preflight(lesson=lesson),
    }


def shown_text(panel) -> str:
    """Every line of text the panel shows (its status line and its other HTML parts)."""
    import ipywidgets
    return "".join(w.value for w in vars(panel).values() if isinstance(w, ipywidgets.HTML))


# The buttons of each panel that ask the engine (the others explain without asking it).
ENGINE_BUTTONS = {
    "LifecyclePanel": ["create"], "CheckPanel": ["check"], "ImageExplorer": ["refresh", "find"],
    "PortPublisher": ["publish", "remove"], "Preflight": ["prepare", "clean"],
}


def test_every_panel_has_a_way_to_be_made_here(kit):
    missing = panel_classes() - set(factories(kit))
    assert not missing, f"add these panels to tests/test_panels.py: {missing}"


def test_every_button_shows_what_went_wrong_in_its_own_panel(client, kit):
    for cls, make in factories(kit).items():
        panel = make()
        assert isinstance(panel, Panel), cls
        assert panel.buttons or cls.__name__ in ("Quiz", "ProjectPanel"), cls
        for name, button in panel.buttons.items():
            def boom(*_a, name=name):
                raise RuntimeError(f"boom from {name}")
            panel.callbacks[name] = boom
            panel.status.value = ""
            button.click()
            assert f"boom from {name}" in panel.status.value, (cls.__name__, name)
            assert "Traceback" not in panel.status.value


def test_panels_survive_engine_restart(client, kit):
    """Stop the course's engine once: every panel's button answers with what to do. Start it
    again: the next click works, with no kernel restart."""
    state = own_engine.read_state()
    if state is None:
        pytest.skip("the engine is the learner's own: the course never stops it")
    panels = {cls.__name__: make() for cls, make in factories(kit).items()}
    panels["Dashboard"].refresh()
    own_engine.stop()
    try:
        for name, panel in panels.items():
            if name == "Dashboard":
                panel.refresh()   # what its background thread does every interval
                clicks = []
            else:
                clicks = [b for b in ENGINE_BUTTONS.get(name, []) if b in panel.buttons]
            for button in clicks:
                panel.status.value = ""
                panel.buttons[button].click()
                shown = shown_text(panel)
                assert ("No Docker Engine answered" in shown or "not answer" in shown or
                        "stopped answering" in shown), \
                    (name, button, shown)
                assert "Traceback" not in shown
            if name == "Dashboard":
                assert "No Docker Engine answered" in panel.status.value
    finally:
        own_engine.start(state.instance, sealed=state.sealed)
    lifecycle = panels["LifecyclePanel"]
    assert lifecycle.do("create"), lifecycle.status.value
    lifecycle.remove()
    explorer = panels["ImageExplorer"]
    explorer.buttons["refresh"].click()
    assert kit["busybox"] in explorer.image.options
    assert panels["Dashboard"].refresh() is not None and panels["Dashboard"].status.value == ""
