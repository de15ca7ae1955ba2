"""The course's one look: a progress bar, a status line, an error line (notebook or terminal)."""
from __future__ import annotations

import html
import sys
import time
from dataclasses import dataclass

GREEN, RED, GREY, AMBER = "#1a7f37", "#cf222e", "#57606a", "#9a6700"


@dataclass
class Line:
    """One line of a check: ok (True, False, None for grey, "warn" for amber), what, what to do."""
    ok: bool | None | str
    text: str
    fix: str = ""


def human_bytes(n: float) -> str:
    """A size as people read it: 512 B, 3.4 KiB, 1.9 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where widgets can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def status_html(ok: bool | None, text: str, fix: str = "") -> str:
    """One line: a green tick, a red cross, a grey dot (ok=None) or an amber warning
    (ok="warn"), the text, and what to do."""
    mark, colour = {True: ("✔", GREEN), False: ("✘", RED), None: ("●", GREY),
                    "warn": ("▲", AMBER)}[ok]
    fix_html = f' <span style="color:{GREY}">→ {html.escape(fix)}</span>' if fix else ""
    return (f'<div style="font-family:monospace;line-height:1.6">'
            f'<span style="color:{colour};font-weight:bold">{mark}</span> '
            f'{html.escape(text)}{fix_html}</div>')


def status_text(ok: bool | None, text: str, fix: str = "") -> str:
    mark = {True: "✔", False: "✘", None: "●", "warn": "▲"}[ok]
    return f"{mark} {text}" + (f"  → {fix}" if fix else "")


def error_html(message: str) -> str:
    """The one way a panel reports a failure: a red line that says what to do."""
    return (f'<div style="color:{RED};font-family:monospace;white-space:pre-wrap">'
            f'✘ {html.escape(message)}</div>')


def show_status(ok: bool | None, text: str, fix: str = "") -> None:
    """Print a status line, as HTML in a notebook and as text in a terminal."""
    if in_notebook():
        from IPython.display import HTML, display
        display(HTML(status_html(ok, text, fix)))
    else:
        print(status_text(ok, text, fix))


class Progress:
    """One progress bar for anything longer than a second.

    In a notebook it is an ipywidgets bar with a caption; in a terminal a text bar on one line.
    Use as a context manager; `update(done, total=None, caption=None)` sets absolute values.
    """

    def __init__(self, description: str, total: float = 1.0, unit: str = "", widget=None):
        self.description, self.total, self.unit = description, max(total, 1e-9), unit
        self.done = 0.0
        self.caption = ""
        self._last_print = 0.0
        self._widget = widget
        if self._widget is None and in_notebook():
            from IPython.display import display
            self._widget = self.make_widget(description)
            display(self._widget)
        elif self._widget is not None:
            self._widget.children[0].description = description
        self._draw()

    @staticmethod
    def make_widget(description: str = ""):
        """A bar and a caption, to embed in a panel; pass it back as `widget=`."""
        import ipywidgets as w
        bar = w.FloatProgress(value=0, min=0, max=1, description=description,
                              style={"description_width": "initial", "bar_color": GREEN},
                              layout=w.Layout(width="60%"))
        return w.HBox([bar, w.Label("")])

    def update(self, done: float, total: float | None = None, caption: str | None = None) -> None:
        if total is not None:
            self.total = max(total, 1e-9)
        self.done = min(done, self.total)
        if caption is not None:
            self.caption = caption
        self._draw()

    def advance(self, step: float = 1.0, caption: str | None = None) -> None:
        self.update(self.done + step, caption=caption)

    def _text(self) -> str:
        pct = 100.0 * self.done / self.total
        amount = f"{self.done:.0f}/{self.total:.0f} {self.unit}".strip() if self.unit else f"{pct:3.0f}%"
        return f"{amount}  {self.caption}".rstrip()

    def _draw(self, final: bool = False) -> None:
        if self._widget is not None:
            bar, label = self._widget.children
            bar.value = self.done / self.total
            label.value = self._text()
            return
        now = time.monotonic()
        if not final and now - self._last_print < 0.5 and self.done < self.total:
            return
        self._last_print = now
        filled = int(30 * self.done / self.total)
        line = f"\r{self.description} [{'#' * filled}{'.' * (30 - filled)}] {self._text()}"
        sys.stdout.write(line[:110].ljust(110))
        sys.stdout.flush()

    def close(self, caption: str | None = None, ok: bool = True) -> None:
        if caption is not None:
            self.caption = caption
        if ok:
            self.done = self.total
        if self._widget is not None:
            self._widget.children[0].style.bar_color = GREEN if ok else RED
        self._draw(final=True)
        if self._widget is None:
            sys.stdout.write("\n")
            sys.stdout.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        return False


def html_table(headers: list, rows: list, align: str = "left") -> str:
    """An HTML table whose every cell is escaped: what the engine says is shown, never run."""
    cell = "padding:2px 10px;border-bottom:1px solid #d0d7de;text-align:" + align
    head = "".join(f'<th style="{cell}">{html.escape(str(h))}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{cell}">{html.escape(str(v))}</td>'
                                    for v in row) + "</tr>" for row in rows)
    return (f'<table style="border-collapse:collapse;font-family:monospace;font-size:12px">'
            f"<tr>{head}</tr>{body}</table>")


class BadInput(ValueError):
    """What a learner typed cannot be used; the message says why and what to type instead."""


def plain_words(exc: BaseException) -> str:
    """What went wrong and what to do, for a learner: never a traceback."""
    if isinstance(exc, BadInput):
        return str(exc)
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound
    from requests.exceptions import ConnectionError as RequestsConnectionError

    from helpers.course.engine import EngineUnavailable, advice
    if isinstance(exc, EngineUnavailable):
        return str(exc)
    if isinstance(exc, (RequestsConnectionError, ConnectionError)) or \
            "Connection aborted" in str(exc) or "connection refused" in str(exc).lower():
        return ("The Docker Engine stopped answering. " + advice(exc) +
                "\nThen press the button again: the panel reconnects by itself.")
    if isinstance(exc, ImageNotFound):
        return (f"{exc.explanation or exc}. The image is not on this engine: run the lesson's "
                "cell that builds or loads it (or `docker images` to see what you have).")
    if isinstance(exc, NotFound):
        return f"{exc.explanation or exc}. It was removed meanwhile: create it again."
    if isinstance(exc, APIError):
        return f"The engine refused: {exc.explanation or exc}"
    if isinstance(exc, DockerException):
        return f"Docker said: {exc}"
    if isinstance(exc, TimeoutError):
        return f"It took too long and was stopped: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Panel:
    """The base of every panel: `.widget` to show, `.buttons`, a `.status` line, `.error()`.

    A subclass makes its buttons with `self.button(...)`: every callback runs inside one guard
    that shows any exception in this panel's status line, in plain words with what to do. Work
    in a thread goes through `self.thread(...)`, under the same guard. A panel shows itself when
    it is the last thing in a cell.
    """

    def __init__(self):
        import ipywidgets as w
        self.status = w.HTML()
        self.buttons: dict = {}
        self.callbacks: dict = {}    # what each button runs, looked up at click time
        self.widget = w.VBox([self.status])

    def layout(self, *children) -> None:
        """The panel's widgets, top to bottom; the status line goes last."""
        import ipywidgets as w
        self.widget.children = [*[c for c in children if c is not None], self.status]
        if not isinstance(self.widget, w.VBox):
            raise TypeError("Panel.widget must stay a VBox")

    def button(self, name: str, on_click, description: str = "", **style):
        import ipywidgets as w
        button = w.Button(description=description or name, **style)
        self.callbacks[name] = on_click
        button.on_click(lambda _b: self.guarded(self.callbacks[name]))
        self.buttons[name] = button
        return button

    def guarded(self, fn, *args, **kwargs):
        """Run `fn`; any exception becomes this panel's red line."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # the one guard: a panel never shows a traceback
            self.error(plain_words(exc))
            return None

    def thread(self, fn, *args, **kwargs):
        """Run `fn` in a daemon thread, under the panel's guard."""
        import threading
        worker = threading.Thread(target=self.guarded, args=(fn, *args), kwargs=kwargs,
                                  daemon=True)
        worker.start()
        return worker

    def say(self, ok: bool | None, text: str, fix: str = "") -> None:
        self.status.value = status_html(ok, text, fix)

    def error(self, message: str) -> None:
        self.status.value = error_html(message)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
