"""The course's one chart look: containers in blue, VMs in orange, units on every axis, every
bar saying what it counts, and a caption saying which machine and which VM accelerator made the
figure. The benchmark's figures (its named results, `helpers.measure.results`) are drawn here."""
from __future__ import annotations

import io
import statistics
from pathlib import Path

from matplotlib.figure import Figure

from helpers.course.ui import in_notebook
from helpers.measure.reference import reference_run

CONTAINER, VM, HOST, REFERENCE = "#0969da", "#d1680b", "#57606a", "#8c959f"
COLOURS = {"container": CONTAINER, "vm": VM, "host": HOST, "published": REFERENCE}
# Shades for the parts of a stacked bar, darkest first.
CONTAINER_SHADES = ["#0969da", "#54aeff", "#b6e3ff", "#033d8b", "#80ccff"]
VM_SHADES = ["#d1680b", "#fb8f44", "#ffc680", "#953800", "#ffddb0", "#762c00", "#e8a36b",
             "#4a1d00"]


def _get(machine, key: str, default="?"):
    """A machine fact from `machine.Machine` (or a dict of the same names, as in
    reference.json)."""
    if isinstance(machine, dict):
        return machine.get(key, default)
    return getattr(machine, key, default)


def caption(machine) -> str:
    """'Measured on: CPU, cores, memory, OS; engine; VM accelerator' for a figure's foot."""
    if not machine:
        return ""
    accel = _get(machine, "accelerator")
    accel_text = {"kvm": "KVM", "tcg": "TCG software emulation (no KVM)",
                  "none": "no VM here"}.get(accel, accel)
    where = (f" in a container of {_get(machine, 'qemu_image')}"
             if _get(machine, "qemu_ran") == "image" else "")
    return (f"Measured on {_get(machine, 'cpu_model')}, {_get(machine, 'cores')} cores, "
            f"{_get(machine, 'memory_gib')} GiB, {_get(machine, 'os')}; "
            f"Docker Engine {_get(machine, 'engine_version')}; "
            f"VM: QEMU {_get(machine, 'qemu_version')} microvm{where}, {accel_text}")


def colour_for(name: str) -> str:
    name = name.lower()
    for key, colour in COLOURS.items():
        if key in name:
            return colour
    return CONTAINER if "docker" in name else HOST


def figure(title: str, machine, ncols: int = 1, nrows: int = 1, width: float = 6.4,
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


def summary_bars(ax, named: dict, unit: str, title: str = "", colours: list | None = None,
                 log: bool = False) -> None:
    """Medians of `stats.Summary`s as bars, their 95% intervals as whiskers."""
    names = list(named)
    medians = [named[n].median for n in names]
    errors = [[m - named[n].low_95 for m, n in zip(medians, names)],
              [named[n].high_95 - m for m, n in zip(medians, names)]]
    bars(ax, names, medians, unit, title, errors=errors, colours=colours, log=log)


def _log_axis(ax, axis: str = "y", subs: tuple = (1.0, 2.0, 5.0)) -> None:
    """A log scale labelled in plain numbers (0.2, 1, 4), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    which = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    which.set_major_locator(LogLocator(base=10, subs=subs))
    which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    which.set_minor_formatter(NullFormatter())


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


def stacked(ax, columns: dict, unit: str, title: str = "", horizontal: bool = False,
            marks: dict | None = None, mark_label: str = "", short_unit: str = "") -> None:
    """One stacked bar per column: columns = {bar name: [(part label, value or None), ...]}.

    Every part is in the legend (below the axes) saying what it counts; a part that does not
    exist for that column (None) is listed as "n/a", never drawn as zero. `marks` = {bar name:
    value} draws a black tick across each bar (e.g. what the host lost), labelled `mark_label`.
    """
    names = list(columns)
    for i, name in enumerate(names):
        shades = VM_SHADES if "vm" in name.lower() else CONTAINER_SHADES
        bottom = 0.0
        for j, (label, value) in enumerate(columns[name]):
            if value is None:
                ax.plot([], [], " ", label=f"{label}: n/a")
                continue
            kw = {"color": shades[j % len(shades)], "edgecolor": "white", "label": label}
            if horizontal:
                ax.barh(i, value, left=bottom, **kw)
            else:
                ax.bar(i, value, bottom=bottom, **kw)
            bottom += value
        where = (bottom, i) if horizontal else (i, bottom)
        ax.annotate(f"{bottom:.3g} {short_unit}".rstrip(), where, fontsize=8,
                    ha="left" if horizontal else "center",
                    va="center" if horizontal else "bottom",
                    xytext=(4, 0) if horizontal else (0, 2), textcoords="offset points")
        if marks and marks.get(name) is not None:
            m = marks[name]
            kw = {"color": "black", "zorder": 4, "lw": 2, "label": mark_label if i == 0 else None}
            if horizontal:
                ax.plot([m, m], [i - 0.42, i + 0.42], **kw)
            else:
                ax.plot([i - 0.42, i + 0.42], [m, m], **kw)
    if horizontal:
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
        ax.invert_yaxis()
    else:
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    _legend_below(ax, -0.16 if horizontal else -0.38)


def _legend_below(ax, y: float = -0.3) -> None:
    """The legend under the axes (and their tick labels), each label once: what every bar and
    part counts."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, frameon=False, ncol=2,
              loc="upper center", bbox_to_anchor=(0.5, y))


# ---------------------------------------------------------------- the benchmark's figures

PART_LABELS = {"cgroup_mib": "its cgroup (docker stats)", "shim_mib": "containerd shim (PSS)",
               "engine_share_mib": "engine daemons' growth (PSS)",
               "guest_ram_mib": "guest RAM QEMU touched", "tcg_code_cache_mib": "TCG code cache",
               "qemu_heap_mib": "QEMU heap and stacks",
               "qemu_binary_mib": "QEMU binary and libraries",
               "unsplit_mib": "QEMU, not split (map unreadable)",
               "kernel_mib": "kernel memory (page tables, stacks, slab)"}

def _accel(machine) -> str:
    return str(_get(machine, "accelerator", "?")).upper()


def memory_columns(c, v, accel: str) -> tuple[dict, dict]:
    """Each side's memory per instance in parts (results.ContainerMemory, results.VmMemoryParts),
    as `stacked` columns, and what the host lost (MemAvailable drop) per instance."""
    container = [("container: its cgroup (docker stats)", c.cgroup_mib),
                 ("container: its containerd shim (PSS)", c.shim_mib),
                 ("container: engine daemons' growth ÷ N (PSS)", c.engine_share_mib),
                 ("container: kernel memory outside its cgroup", c.kernel_mib)]
    vm = [("VM: guest RAM QEMU touched", v.guest_ram_mib),
          (f"VM: TCG code cache{' (KVM has none)' if accel == 'KVM' else ''}",
           v.tcg_code_cache_mib),
          ("VM: QEMU heap and stacks", v.qemu_heap_mib),
          ("VM: QEMU binary and libraries", v.qemu_binary_mib),
          ("VM: its container's shim (PSS)", v.shim_mib),
          ("VM: engine daemons' growth ÷ N (PSS)", v.engine_share_mib),
          ("VM: kernel memory for it (page tables, stacks)", v.kernel_mib)]
    if v.unsplit_mib is not None:
        vm.append(("VM: QEMU, not split (map unreadable)", v.unsplit_mib))
    names = (f"container\n({c.n} running)", f"VM, {accel}\n({v.n} running)")
    return ({names[0]: container, names[1]: vm},
            {names[0]: c.mem_available_drop_mib, names[1]: v.mem_available_drop_mib})


def memory_parts(ax, c, v, accel: str) -> None:
    """Memory per instance in parts, with what the host lost as a black tick on each bar and
    the guest's own reported use hatched inside its RAM."""
    columns, marks = memory_columns(c, v, accel)
    stacked(ax, columns, "MiB per instance", "Memory per instance, in parts",
            marks=marks, mark_label="host lost (MemAvailable drop ÷ N)", short_unit="MiB")
    if v.guest_reported_used_mib is not None and v.guest_ram_mib is not None:
        ax.bar(1, min(v.guest_reported_used_mib, v.guest_ram_mib), width=0.5, fill=False,
               hatch="///", edgecolor="black", lw=0,
               label="inside guest RAM: what the guest says it uses (not added)")
        _legend_below(ax, -0.38)


def ladder(ax, L) -> None:
    """Start-up from the floor up (results.Ladder): medians, 95% intervals, the VM split into
    QEMU, kernel and user space."""
    columns = {"plain process": [("process: launch → first line", L.process_s.median)],
               "docker run\n--network none": [("container: create → first line",
                                                L.container_no_network_s.median)],
               "docker run\n(bridge)": [("container: create → first line",
                                          L.container_bridge_s.median)]}
    if L.vm_kernel_s is not None:
        columns["VM boot"] = [
            (f"VM: QEMU set-up, loading the kernel ({L.vm_qemu_s.median:.2g} s)",
             L.vm_qemu_s.median),
            (f"VM: kernel boot, guest /proc/uptime ({L.vm_kernel_s.median:.2g} s)",
             L.vm_kernel_s.median),
            (f"VM: init → ready ({L.vm_user_space_s.median:.2g} s)", L.vm_user_space_s.median)]
    else:
        columns["VM boot"] = [("VM: QEMU start → ready", L.vm_ready_s.median)]
    stacked(ax, columns, "seconds (log scale)", "Start-up, from the floor up (whiskers: 95%)",
            horizontal=True, short_unit="s")
    for i, s in enumerate((L.process_s, L.container_no_network_s, L.container_bridge_s,
                           L.vm_ready_s)):
        ax.errorbar(s.median, i, xerr=[[s.median - s.low_95], [s.high_95 - s.median]],
                    fmt="none", ecolor="black", capsize=3, lw=1)
    _log_axis(ax, "x", subs=(1.0,))
    ax.set_xlim(min(L.process_s.low_95, 1e-3) / 2, L.vm_ready_s.high_95 * 4)


def cpu_bill(ax, cc, vc, accel: str) -> None:
    """One start's CPU bill in parts (results.ContainerCpu, results.VmCpu)."""
    m = lambda s: None if s is None else s.median
    columns = {"container start": [("container: dockerd", m(cc.dockerd_cpu_s)),
                                   ("container: containerd", m(cc.containerd_cpu_s)),
                                   ("container: shim", m(cc.shim_cpu_s)),
                                   ("container: runc", m(cc.runc_cpu_s)),
                                   ("container: its cgroup (workload)", cc.cgroup_cpu_s.median)],
               f"VM boot ({accel})": [("VM: all QEMU threads", vc.qemu_cpu_s.median),
                                      ("VM: engine and shim (QEMU in a container)",
                                       m(vc.engine_cpu_s))]}
    stacked(ax, columns, "CPU seconds", "CPU bill of one start, until the workload's end",
            horizontal=True, short_unit="CPU s")


def _reference_headline(reference: dict) -> dict:
    return reference.get("headline") or {}


def versus_reference(ax, result, reference: dict) -> None:
    """Your headline figures beside the course's reference run (data/bench/reference.json)."""
    ref = _reference_headline(reference)
    mine = result.headline
    pairs = [("container\nstart (s)", mine.container_start_median_s,
              ref.get("container_start_median_s")),
             ("VM to\nready (s)", mine.vm_ready_median_s, ref.get("vm_ready_median_s")),
             ("container\nmemory (MiB)", mine.container_memory_mib,
              ref.get("container_memory_mib")),
             ("VM\nmemory (MiB)", mine.vm_memory_mib, ref.get("vm_memory_mib"))]
    xs = range(len(pairs))
    ax.bar([x - 0.2 for x in xs], [p[1] for p in pairs], width=0.4, label="yours",
           color=[CONTAINER, VM, CONTAINER, VM])
    ax.bar([x + 0.2 for x in xs], [p[2] or 0 for p in pairs], width=0.4, color=REFERENCE,
           label=f"reference ({_get(reference.get('machine', {}), 'accelerator').upper()}, "
                 f"{str(reference.get('date', '?'))[:10]})")
    for x, (_, yours, theirs) in zip(xs, pairs):
        ax.annotate(f"{yours:.3g}", (x - 0.2, yours), ha="center", va="bottom", fontsize=7)
        ax.annotate("n/a" if theirs is None else f"{theirs:.3g}", (x + 0.2, theirs or 0),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), [p[0] for p in pairs], fontsize=7)
    _log_axis(ax)
    ax.set_ylabel("each in its unit (log scale)")
    ax.set_title("Your machine vs the course's reference run", fontsize=10)
    ax.legend(fontsize=7, frameon=False)


def live(series_memory: dict, series_cpu: dict, machine):
    """The live panel's chart: memory and CPU over time, one line per side."""
    fig, (mem, cpu) = figure("Same workload, side by side", machine, ncols=2, width=5.2,
                             height=3.2)
    timeline(mem, series_memory, "MiB", "Memory (container: its cgroup; VM: QEMU's RSS)")
    timeline(cpu, series_cpu, "% of one core", "CPU")
    fig.tight_layout(rect=(0, 0.06, 1, 0.94))
    return fig


def dashboard(result, reference: dict | None = None):
    """The full dashboard of `bench.container_vs_vm` (a results.ContainerVsVm): the ladder,
    memory in parts, the CPU bill, and your machine beside the reference run."""
    reference = reference_run() if reference is None else reference
    accel = _accel(result.machine)
    h = result.headline
    fig, axes = figure(f"Container vs VM on this machine ({'quick' if result.quick else 'full'}"
                       f" run): VM ÷ container = start {h.start_ratio:.0f}x, memory "
                       f"{h.memory_ratio:.0f}x, CPU {h.cpu_ratio:.0f}x", result.machine,
                       ncols=2, nrows=2, width=7.0, height=4.8)
    ladder(axes[0], result.startup)
    memory_parts(axes[1], result.memory_container, result.memory_vm, accel)
    cpu_bill(axes[2], result.cpu_container, result.cpu_vm, accel)
    if reference:
        versus_reference(axes[3], result, reference)
    else:
        axes[3].set_axis_off()
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


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
