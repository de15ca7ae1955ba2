"""JupyterLab in a real Chromium: notebook 00 opens without a kernel dialog, runs, and its
preflight panel shows every line green but KVM; every lesson runs and its widgets render; the
stack panel's Up and the health panel's Break/Heal answer clicks in the page."""
import json
import re
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.course.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from reaching anything but the page under test.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (./course test installs it on Debian)")
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell, so the test can read outputs far down the notebook.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # Never write the executed notebooks back: the course ships them without outputs.
    docmanager = home / "settings" / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    before = {p: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    port, token = free_port(18888, quiet=True), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    log = open(home / "lab.log", "w")
    # Started the README's way, so that the kernels and terminals get what `./course start`
    # gives them (the course's engine, its CLI configuration with Compose v2 and buildx).
    proc = subprocess.Popen(
        [str(ROOT / "course"), "start", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("JupyterLab did not start: " + (home / "lab.log").read_text()[-2000:])
            time.sleep(0.5)
    yield base, token
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    changed = [p.name for p, data in before.items() if p.read_bytes() != data]
    assert not changed, f"the browser run wrote into {changed}"


def open_notebook(page, base, token, name):
    """Open a notebook in a fresh workspace and wait until its own kernel is connected."""
    page.goto(f"{base}/lab/tree/notebooks/{name}?reset&token={token}")
    page.wait_for_function(
        "name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path.endsWith(name)"
        " && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }",
        arg=name, timeout=90_000)


def test_notebook_00_runs_in_jupyterlab(lab, client, kit):
    from playwright.sync_api import sync_playwright
    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{base}/lab/tree/notebooks/00-setup.ipynb?token={token}")
        # The kernel starts from the notebook's kernelspec: no "Select Kernel" dialog.
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.sessionContext.session"
            " && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }",
            timeout=90_000)
        assert page.locator(".jp-Dialog").count() == 0
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector("text=/Removed \\d+ containers/", timeout=180_000)
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "00-setup.png"), full_page=True)
        page.locator(".jp-OutputArea-output", has_text="Preflight: is this machine ready?") \
            .screenshot(path=str(ARTIFACTS / "00-preflight.png"))
        browser.close()
    panel = next(t for t in outputs if t.startswith("Preflight: is this machine ready?"))
    lines = [l for l in panel.splitlines() if l[:1] in "✔✘●"]
    assert any(l.startswith("✔ Engine") for l in lines), panel
    assert any("Course images present" in l for l in lines), panel
    assert not [l for l in lines if l.startswith("✘")], panel
    assert [l for l in lines if "KVM" in l], panel
    assert "hello from a container" in "\n".join(outputs)
    assert not [t for t in outputs if "Traceback" in t]


LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("0[1-9]-*.ipynb"))


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_in_jupyterlab_and_its_widgets_render(lab, client, kit, name):
    """Every lesson in the real browser: runs to its clean-up cell, every widget view renders."""
    from playwright.sync_api import sync_playwright
    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        open_notebook(page, base, token, name)
        started = time.monotonic()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_selector("text=/Removed \\d+ containers/", timeout=240_000)
            from test_notebooks import note_time
            note_time("browser", name, time.monotonic() - started)
        finally:
            page.screenshot(path=str(ARTIFACTS / f"{name[:-6]}.png"), full_page=True)
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        panels = page.locator(".jp-OutputArea-output", has=page.locator(".widget-button"))
        widgets = panels.count()
        for i in range(min(widgets, 3)):
            panels.nth(i).screenshot(path=str(ARTIFACTS / f"{name[:2]}-panel-{i}.png"))
        page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
        browser.close()
    text = "\n".join(outputs)
    assert "Traceback" not in text
    assert "Error displaying widget" not in text and "Loading widget..." not in text
    assert widgets > 0, "no button of any panel rendered"


def cell_index(name: str, text: str) -> int:
    """The index of the notebook's first cell whose source holds `text`."""
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    return next(i for i, c in enumerate(cells) if text in "".join(c["source"]))


def run(page, command: str, index: int, timeout_s: float) -> None:
    """Make cell `index` the active one and run a notebook command on it ('notebook:run-cell',
    'notebook:run-all-above'); wait until every cell it started has answered, and fail if one
    of them raised."""
    page.evaluate(
        "([command, index]) => { window.__ran = null;"
        " const nb = window.jupyterapp.shell.currentWidget.content;"
        " nb.activeCellIndex = index; nb.deselectAll();"
        " window.jupyterapp.commands.execute(command)"
        "   .then(ok => { window.__ran = ok; }, err => { window.__ran = String(err); }); }",
        [command, index])
    page.wait_for_function("() => window.__ran !== null", timeout=timeout_s * 1000)
    assert page.evaluate("() => window.__ran") is True, \
        f"{command} at cell {index}: " + "\n".join(
            page.locator(".jp-OutputArea-output").all_inner_texts())[-1500:]


def column(panel, service: str, header: str):
    """One cell of a panel's table (an html_table): the row of `service`, the column `header`.
    Waits for the table: a panel may draw it only after its first refresh."""
    panel.locator("th").first.wait_for(timeout=90_000)
    headers = [h.strip() for h in panel.locator("th").all_inner_texts()]
    first = panel.page.locator("td:first-child", has_text=re.compile(f"^{service}$"))
    return panel.locator("tr", has=first).locator("td").nth(headers.index(header))


def click_panel(lab, name: str, panel_cell: str, hook: str, clicks) -> None:
    """Open the lesson, run its cells down to the one that shows the panel (`panel_cell` is in
    its source), do `clicks(page, panel)` in the page, then run the lesson's clean-up cell.
    The stack goes down in any case.

    The panels' buttons are found by their class (`{hook}-NAME`): an ipywidgets button with an
    icon has the icon's glyph in its accessible name ("\\uf04b Up"), so a role and an exact
    name find nothing, and a loose name finds JupyterLab's own buttons ("Upload Files")."""
    from playwright.sync_api import sync_playwright
    from helpers.course.compose import down_project
    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    project = f"course{name[:2]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            open_notebook(page, base, token, name)
            try:
                run(page, "notebook:run-all-above", cell_index(name, panel_cell) + 1, 180)
                panel = page.locator(".jp-OutputArea-output", has=page.locator(f".{hook}-up"))
                panel.scroll_into_view_if_needed()
                clicks(page, panel)
                run(page, "notebook:run-cell", cell_index(name, "lesson.clean_up()"), 60)
            finally:
                page.screenshot(path=str(ARTIFACTS / f"{name[:2]}-clicked.png"), full_page=True)
                page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
                browser.close()
    finally:
        down_project(project)


def test_stack_panel_up_clicked_in_the_page_runs_the_stack(lab, client, kit):
    """05: the learner presses Up in the page; the panel's table shows both services running,
    as the engine reports them; Down takes the project away."""
    from playwright.sync_api import expect

    def clicks(page, panel):
        started = time.monotonic()
        panel.locator(".dockercourse-stack-up").click()
        for service in ("redis", "web"):
            expect(column(panel, service, "state")).to_have_text("running", timeout=90_000)
        expect(panel).to_contain_text("course05 is up: 2 container(s)", timeout=30_000)
        panel.screenshot(path=str(ARTIFACTS / "05-stack-up.png"))
        up = client.containers.list(filters={"label": "com.docker.compose.project=course05"})
        assert sorted(c.labels["com.docker.compose.service"] for c in up) == ["redis", "web"]
        panel.locator(".dockercourse-stack-down").click()
        expect(panel).to_contain_text("course05 is down", timeout=60_000)
        expect(column(panel, "web", "state")).to_have_text("not created")
        from test_notebooks import note_time
        note_time("browser-clicks", "05-compose.ipynb", time.monotonic() - started)

    click_panel(lab, "05-compose.ipynb", "StackPanel(stack)", "dockercourse-stack", clicks)
    assert not client.containers.list(
        all=True, filters={"label": "com.docker.compose.project=course05"})


def test_health_toggle_clicked_in_the_page_breaks_and_heals_redis(lab, client, kit):
    """06: Up, then Break redis in the page: the panel's table turns it unhealthy (the engine's
    own health report), Heal brings it back to healthy; Down leaves nothing."""
    from playwright.sync_api import expect

    def clicks(page, panel):
        started = time.monotonic()
        panel.locator(".dockercourse-health-up").click()
        for service in ("redis", "web"):
            expect(column(panel, service, "health")).to_have_text("healthy", timeout=90_000)
        toggle = panel.locator(".dockercourse-health-toggle")
        expect(toggle).to_have_text("Break redis")
        toggle.click()
        expect(toggle).to_have_text("Heal redis", timeout=30_000)
        expect(column(panel, "redis", "health")).to_have_text("unhealthy", timeout=30_000)
        expect(column(panel, "redis", "state")).to_have_text("running")   # running, not working
        toggle.click()
        expect(toggle).to_have_text("Break redis", timeout=30_000)
        expect(column(panel, "redis", "health")).to_have_text("healthy", timeout=30_000)
        panel.screenshot(path=str(ARTIFACTS / "06-health-healed.png"))
        panel.locator(".dockercourse-health-down").click()
        expect(panel).to_contain_text("course06 is down", timeout=60_000)
        from test_notebooks import note_time
        note_time("browser-clicks", "06-healthchecks.ipynb", time.monotonic() - started)

    click_panel(lab, "06-healthchecks.ipynb", "HealthPanel(stack)", "dockercourse-health",
                clicks)
    assert not client.containers.list(
        all=True, filters={"label": "com.docker.compose.project=course06"})


def test_terminal_talks_to_the_course_engine_with_compose_v2(lab, client, tmp_path):
    """A JupyterLab terminal, opened in the browser after `./course start`: its docker CLI
    reaches the same engine as the tests, and `docker compose` is v2."""
    from playwright.sync_api import sync_playwright
    base, token = lab
    out = tmp_path / "terminal.txt"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{base}/lab?reset&token={token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                               " .hasCommand('terminal:create-new')", timeout=90_000)
        page.evaluate("window.jupyterapp.commands.execute('terminal:create-new')")
        page.wait_for_selector(".jp-Terminal .xterm-helper-textarea", timeout=60_000)
        page.click(".jp-Terminal")
        page.keyboard.type(
            f"docker version --format 'server {{{{.Server.Version}}}}' > {out}; "
            f"docker compose version >> {out}; echo done >> {out}\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "done" not in (out.read_text() if out.exists()
                                                              else ""):
            time.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "terminal.png"))
        browser.close()
    text = out.read_text()
    assert f"server {client.version()['Version']}" in text, text
    assert re.search(r"Docker Compose version v?2\.", text), text


def test_lab_listens_on_loopback_with_a_token_and_asks_no_news(lab):
    """403 without the token; 127.0.0.1 only; the news prompt is off (fetchNews false)."""
    import urllib.error
    base, token = lab
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/api/contents", timeout=5)
    assert err.value.code == 403
    port = int(base.rsplit(":", 1)[1])
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                               text=True).stdout
    assert listening and all("127.0.0.1:" in line for line in listening.splitlines()), listening
    settings = json.loads(urllib.request.urlopen(
        f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}",
        timeout=5).read())
    assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"
