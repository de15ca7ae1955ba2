"""The course's one chart look: containers in blue, VMs in orange, units on every axis, and a
caption saying which machine and which VM accelerator made the figure."""
from __future__ import annotations

import io
import statistics
from pathlib import Path

from matplotlib.figure import Figure

from .ui import in_notebook

CONTAINER, VM, HOST, REFERENCE = "#0969da", "#d1680b", "#57606a", "#8c959f"
COLOURS = {"container": CONTAINER, "vm": VM, "host": HOST, "published": REFERENCE}


def caption(machine: dict) -> str:
    """'Measured on: CPU, cores, memory, OS; engine; VM accelerator' for a figure's foot."""
    if not machine:
        return ""
    accel = machine.get("accelerator", "?")
    accel_text = {"kvm": "KVM", "tcg": "TCG software emulation (no KVM)"}.get(accel, accel)
    return (f"Measured on {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, "
            f"{machine.get('memory_gib', '?')} GiB, {machine.get('os', '?')}; "
            f"Docker Engine {machine.get('engine_version', '?')}; "
            f"VM: QEMU {machine.get('qemu_version', '?')} microvm"
            + (f" in a container of {machine['qemu_image']}"
               if machine.get("qemu_ran") == "image" else "") + f", {accel_text}")


def colour_for(name: str) -> str:
    name = name.lower()
    for key, colour in COLOURS.items():
        if key in name:
            return colour
    return CONTAINER if "docker" in name else HOST


def figure(title: str, machine: dict, ncols: int = 1, nrows: int = 1, width: float = 6.4,
           height: float = 3.6):
    """A figure in the course's look, with the machine caption at its foot."""
    # A bare Figure, not pyplot: a notebook shows it once (as the cell's value), and nothing
    # needs a display or a GUI backend.
    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.text(0.01, 0.005, caption(machine), fontsize=7, color=HOST, ha="left", va="bottom",
             wrap=True)
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig, (axes.flat[0] if axes.size == 1 else axes.flatten())


def bars(ax, names: list, values: list, unit: str, title: str = "", errors: list | None = None,
         colours: list | None = None, log: bool = False) -> None:
    """Bars with their value written on top, the unit on the axis."""
    colours = colours or [colour_for(n) for n in names]
    ax.bar(names, values, color=colours, yerr=errors, capsize=4 if errors else 0)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    if log:
        _log_axis(ax)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    ax.tick_params(axis="x", labelsize=8)


def _log_axis(ax) -> None:
    """A log scale labelled in plain numbers (0.2, 1, 4), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def distribution(ax, samples: dict, unit: str, title: str = "", log: bool = True) -> None:
    """Every run as a dot and its median as a bar, one column per side."""
    names = list(samples)
    for i, name in enumerate(names):
        values = samples[name]
        if not values:
            continue
        ax.scatter([i] * len(values), values, color=colour_for(name), alpha=0.6, s=18, zorder=3)
        median = statistics.median(values)
        ax.hlines(median, i - 0.3, i + 0.3, color=colour_for(name), lw=2.5)
        ax.annotate(f"median {median:.3g} {unit}", (i + 0.32, median), fontsize=8, va="center")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(-0.5, len(names) - 0.2)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    if log:
        _log_axis(ax)


def timeline(ax, series: dict, unit: str, title: str = "", xunit: str = "s") -> None:
    """Lines over time: series = {name: (times, values)}."""
    for name, (t, v) in series.items():
        ax.plot(t, v, label=name, color=colour_for(name), lw=1.8)
    ax.set_xlabel(f"time ({xunit})")
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=8, frameon=False)


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes: for an ipywidgets Image, which shows it headless too."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


if in_notebook():  # a bare Figure as a cell's value shows as a picture
    from IPython import get_ipython
    get_ipython().display_formatter.formatters["image/png"].for_type(Figure, png)
