"""Diagrams drawn from the live engine's facts: the chain of programs (lesson 00) and an image's
layer stack (lesson 01). Each function returns a bare matplotlib Figure, shown once as a cell's
value."""
from __future__ import annotations

import platform

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from helpers.measure.charts import CONTAINER, HOST, REFERENCE, VM

BOX = dict(boxstyle="round,pad=0.02,rounding_size=0.04", linewidth=1.2)


def _box(ax, x, y, w, h, title, detail, colour):
    ax.add_patch(FancyBboxPatch((x, y), w, h, facecolor=colour + "22", edgecolor=colour, **BOX))
    ax.text(x + w / 2, y + h * 0.62, title, ha="center", va="center", fontsize=10,
            fontweight="bold")
    ax.text(x + w / 2, y + h * 0.28, detail, ha="center", va="center", fontsize=8, color=HOST)


def components(client) -> dict:
    """`docker version`'s server components: {'Engine': '26.1.5', 'containerd': ..., 'runc': ...}."""
    version = client.version()
    found = {c.get("Name", ""): c.get("Version", "") for c in version.get("Components") or []}
    found.setdefault("Engine", version.get("Version", ""))
    return found


def architecture(client, cli_version: str = "") -> Figure:
    """client → dockerd → containerd → runc → kernel, each with the version this engine reports
    (`docker version`), and a dashed frame where the engine runs in a VM of its own."""
    import docker
    from helpers.course.engine import cli_version as docker_cli_version
    cli_version = cli_version or docker_cli_version()
    found = components(client)
    info = client.info()
    runtime = next((n for n in found if n.lower().startswith("runc") or n.lower() == "crun"),
                   "runc")
    chain = [
        ("docker CLI  ·  Python SDK", f"CLI {cli_version}  ·  docker-py {docker.__version__}",
         CONTAINER, "HTTP over the socket (the Engine API)"),
        ("dockerd (Docker Engine)", f"Engine {found.get('Engine', '?')}", CONTAINER,
         "gRPC: images, snapshots, tasks"),
        ("containerd", f"containerd {found.get('containerd', '?')}", REFERENCE,
         "an OCI bundle: config.json + root file system"),
        (runtime, f"{runtime} {found.get(runtime, '?')}  (starts the process, then exits)",
         REFERENCE, "system calls: clone(namespaces), cgroups, mounts"),
        ("Linux kernel", f"{info.get('KernelVersion', '?')}  ·  {info.get('OperatingSystem', '')}",
         VM, ""),
    ]
    fig = Figure(figsize=(7.2, 6.2))
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10.4)
    ax.axis("off")
    h, gap, top = 1.25, 0.75, 9.9
    for i, (title, detail, colour, arrow) in enumerate(chain):
        y = top - h - i * (h + gap)
        _box(ax, 1.5, y, 7, h, title, detail, colour)
        if arrow:
            ax.annotate("", xy=(5, y - gap + 0.05), xytext=(5, y - 0.05),
                        arrowprops=dict(arrowstyle="->", color=HOST))
            ax.text(5.15, y - gap / 2, arrow, fontsize=7.5, color=HOST, va="center")
    engine_kernel = info.get("KernelVersion", "")
    if platform.system() != "Linux" or platform.release() != engine_kernel:
        # the engine's kernel is not this machine's: the lower four run in a VM of their own
        bottom = top - 5 * h - 4 * gap - 0.2
        height = 4 * h + 3 * gap + 0.4
        ax.add_patch(FancyBboxPatch((1.2, bottom), 7.6, height, fill=False, linestyle="--",
                                    edgecolor=VM, **{**BOX, "linewidth": 1}))
        ax.text(8.85, bottom + height, "a Linux VM (Docker Desktop, WSL 2 or another machine)",
                fontsize=7.5, color=VM, ha="right", va="bottom")
    fig.suptitle("Who does what when you type `docker run`", fontsize=12, fontweight="bold")
    fig.text(0.01, 0.01, f"versions as this engine reports them (docker version); notebook on "
             f"{platform.system()} {platform.release()}", fontsize=7, color=HOST)
    return fig


def layer_stack(client, image: str) -> Figure:
    """The image's layers as a stack of boxes, bottom first: size and the step that made each
    (`docker history` + `RootFS.Layers`, paired by `helpers.labs.explorer.layers`)."""
    from helpers.course.layers import layers
    from helpers.course.ui import human_bytes
    stack = layers(client, image)
    h, n = 0.8, len(stack) + 1          # one row more: a container's writable layer on top
    fig = Figure(figsize=(7.5, 0.55 * n + 1.2))
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, n * h + 0.1)
    ax.axis("off")
    for layer in stack:
        y = layer.index * h
        colour = CONTAINER if layer.index == len(stack) - 1 else REFERENCE
        ax.add_patch(FancyBboxPatch((0.1, y + 0.06), 9.8, h - 0.12, facecolor=colour + "22",
                                    edgecolor=colour, **BOX))
        ax.text(0.3, y + h / 2, f"layer {layer.index}  {layer.short_id}", va="center",
                fontsize=8.5, family="monospace")
        ax.text(3.4, y + h / 2, f"{human_bytes(layer.size_bytes):>9}", va="center", fontsize=8.5,
                family="monospace")
        ax.text(4.9, y + h / 2, layer.step[:48], va="center", fontsize=8, color=HOST)
    y = len(stack) * h
    ax.add_patch(FancyBboxPatch((0.1, y + 0.06), 9.8, h - 0.12, fill=False, linestyle="--",
                                edgecolor=VM, **BOX))
    ax.text(0.3, y + h / 2, "a container's writable layer: made by docker run, gone with "
            "docker rm", va="center", fontsize=8.5, color=VM)
    fig.suptitle(f"{image}: {len(stack)} read-only layers, the first at the bottom",
                 fontsize=11, fontweight="bold")
    fig.tight_layout()
    return fig
