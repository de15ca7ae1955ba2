"""Notebook 07 (VM vs container): an exercise on the shared kernel, the quiz, and the
"predict, then measure" widget."""
from __future__ import annotations

from docker.errors import NotFound

from helpers.course.images import ref
from helpers.course.labels import LABEL, labels
from helpers.course.ui import status_html
from . import Line, exercise, question

NAME = "course07-kernel"


def _solve(client):
    client.containers.run(ref("busybox"), ["uname", "-r"], name=NAME, labels=labels(7),
                          detach=True).wait(timeout=60)


def _reset(client):
    try:
        client.containers.get(NAME).remove(force=True)
    except NotFound:
        pass


@exercise("07.kernel", "Whose kernel answers?",
          task=f"Run a container named <code>{NAME}</code> from <code>busybox:1.35</code> that "
               "runs <code>uname -r</code>, with the label <code>dockercourse.notebook=07</code>, "
               "and leave it (do not use <code>--rm</code>) so the check can read its output.",
          hint="docker run accepts --name and --label; the command goes after the image.",
          answer=f"docker run --name {NAME} --label dockercourse.notebook=07 busybox:1.35 uname -r\n"
                 f"# SDK: client.containers.run('busybox:1.35', ['uname', '-r'], name='{NAME}',\n"
                 f"#        labels={{'dockercourse.notebook': '07'}}, detach=True)",
          solve=_solve, reset=_reset, names={"containers": [NAME]})
def check_kernel(client):
    try:
        c = client.containers.get(NAME)
    except NotFound:
        return [Line(False, f"No container named {NAME}.",
                     f"docker run --name {NAME} --label dockercourse.notebook=07 busybox:1.35 "
                     "uname -r")]
    lines = [Line(True, f"Container {NAME} exists.")]
    lines.append(Line(c.labels.get(LABEL) == "07", "It carries dockercourse.notebook=07.",
                      "Remove it and run it again with --label dockercourse.notebook=07."))
    lines.append(Line(c.image.tags[:1] == [ref("busybox")] if c.image.tags else False,
                      f"It runs {ref('busybox')}.", f"Use the image {ref('busybox')}."))
    said = c.logs().decode(errors="replace").strip()
    # The engine's kernel: the host's on Linux, Docker Desktop's VM elsewhere.
    lines.append(Line(said == client.info()["KernelVersion"],
                      f"It printed the engine host's kernel ({said or 'nothing yet'}).",
                      "Its command must be uname -r (and it must have finished)."))
    return lines


question("07.kernel", "A container prints `uname -r`. What does it show?",
         ["The kernel inside the image", "The host's kernel", "The newest kernel Docker knows"],
         1, "An image holds no kernel at all: every container's processes run on the host's "
            "kernel, which is why `uname -r` matches the host. A VM boots its own.")
question("07.light", "Why does a container start faster than a VM boots?",
         ["Containers are compiled ahead of time",
          "No kernel boots: the engine only sets up namespaces and cgroups and starts a process",
          "Docker caches running containers"],
         1, "A VM must boot a whole kernel and its devices; a container is one more process on "
            "an already running kernel, fenced off by namespaces and limited by cgroups.")
question("07.vm-wins", "Which job still calls for a VM rather than a container?",
         ["Running many copies of a web app", "Running Windows or a different kernel version",
          "Keeping a database's data"],
         1, "Containers share the host's kernel, so they cannot run another kernel or OS; VMs can, "
            "and their separate kernel is also a stronger isolation boundary between tenants.")


def prediction(panel=None):
    """A slider for the learner's guess of 'VM boot ÷ container start'; `.reveal()` compares."""
    import ipywidgets as w
    slider = w.FloatLogSlider(value=10, base=10, min=0, max=3, step=0.05,
                              description="VM ÷ container", readout_format=".0f",
                              style={"description_width": "initial"})
    out = w.HTML()
    button = w.Button(description="Reveal", icon="eye")
    box = w.VBox([w.HTML("<b>Predict:</b> how many times longer does the VM take to be ready "
                         "than the container?"), w.HBox([slider, button]), out])

    def reveal(_=None):
        result = getattr(panel, "result", None)   # a live_panel.LiveResult after a run
        if result is None:
            out.value = status_html(None, "Run the live panel first, then reveal.")
            return None
        ratio = result.ratio
        off = max(ratio, slider.value) / min(ratio, slider.value)
        verdict = "within a factor of 2: well judged" if off <= 2 else f"off by {off:.1f}x"
        out.value = status_html(off <= 2, f"You said {slider.value:.0f}x; measured {ratio:.0f}x "
                                f"({result.machine.accelerator.upper()}): {verdict}.")
        return ratio

    button.on_click(reveal)
    box.slider, box.reveal, box.output = slider, reveal, out
    return box
