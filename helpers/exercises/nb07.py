"""Notebook 07 (VM vs container): give a container a VM's fixed budget, the quiz, a prediction,
and the "predict, then measure" widget."""
from __future__ import annotations

from docker.errors import NotFound

from helpers.course.images import ref
from helpers.course.ui import status_html
from . import Line, exercise, question
from .nb02 import predict as _predict

NAME = "course07-capped"        # the container the exercise asks for
MEMORY_MIB = 128                # the course's VM: qemu -m 128 -smp 1
CPUS = 1
MIB = 2**20

# The reference solution, once as the learner types it and once in Python; solve() runs the
# first, a test runs the second.
ANSWER_CLI = (f"docker run -d --name {NAME} --memory {MEMORY_MIB}m --memory-swap {MEMORY_MIB}m "
              f"--cpus {CPUS} {ref('busybox')} sleep 3600")
ANSWER_SDK = (f"client.containers.run({ref('busybox')!r}, ['sleep', '3600'], detach=True, "
              f"name={NAME!r},\n"
              f"                      mem_limit='{MEMORY_MIB}m', memswap_limit='{MEMORY_MIB}m', "
              f"nano_cpus={CPUS}_000_000_000)")
# Plausible wrong attempts the Check rejects, each named in the task (a test runs every one).
WRONG = {
    "memory alone":                # it may swap as much again
        f"docker run -d --name {NAME} --memory {MEMORY_MIB}m --cpus {CPUS} {ref('busybox')} "
        "sleep 3600",
    "a memory reservation":        # a soft target, not a limit
        f"docker run -d --name {NAME} --memory-reservation {MEMORY_MIB}m --cpus {CPUS} "
        f"{ref('busybox')} sleep 3600",
    "CPU shares":                  # a weight, not a cap
        f"docker run -d --name {NAME} --memory {MEMORY_MIB}m --memory-swap {MEMORY_MIB}m "
        f"--cpu-shares 1024 {ref('busybox')} sleep 3600",
}

# The container's own cgroup, as the kernel sees it (cgroup v2 first, then v1).
CGROUP_MEMORY = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")


def _solve(client):
    from helpers.course.cli import run
    run(ANSWER_CLI, echo=False)


def _reset(client):
    try:
        client.containers.get(NAME).remove(force=True)
    except NotFound:
        pass


def _mib(n: int) -> str:
    return f"{n / MIB:g} MiB"


@exercise(
    "07.capped", "Give a container a VM's fixed budget",
    task=f"The course's VM gets {MEMORY_MIB} MiB of memory and {CPUS} CPU, and cannot take more "
         "from this machine. A container, on the shared kernel, may take all of the host's "
         f"memory and every CPU unless it is told otherwise. Run a container named "
         f"<code>{NAME}</code> from <code>{ref('busybox')}</code>, in the background and kept "
         f"running (let it sleep), that can never use more than {MEMORY_MIB} MiB of memory, with "
         f"no swap beyond it, nor more than {CPUS} CPU. The Check reads the limits the engine "
         "recorded and the one the kernel enforces in the container's cgroup. Careful: a limit "
         "on memory alone (which lets it swap as much again), a memory reservation (which is not "
         "a limit) and CPU shares (a weight, not a cap) do not pass.",
    hint="`docker run --help` lists the options for memory, swap and CPUs. The swap option "
         "counts memory and swap together, so think about what it must equal for no swap at "
         "all. A CPU cap is a number of CPUs, not a share.",
    answer="# in a terminal, or in a %%docker cell:\n" + ANSWER_CLI +
           "\n\n# or in Python:\n" + ANSWER_SDK,
    solve=_solve, reset=_reset, names={"containers": [NAME]})
def check_capped(client) -> list:
    try:
        c = client.containers.get(NAME)
    except NotFound:
        return [Line(False, f"no container is named {NAME}",
                     "docker ps -a lists your containers; --name gives one")]
    image = client.images.get(ref("busybox"))
    if c.image.id != image.id:
        return [Line(False, f"{NAME} runs {c.image.tags or c.image.short_id}, not "
                            f"{ref('busybox')}", f"docker rm -f {NAME}, then run it from "
                                                 f"{ref('busybox')}")]
    lines = [Line(True, f"{NAME} exists, made from {ref('busybox')}")]
    if c.status != "running":
        return lines + [Line(False, f"{NAME} is {c.status}, so its cgroup cannot be read",
                             f"docker rm -f {NAME}, then run it in the background with a command "
                             "that keeps it up, such as sleep 3600")]
    host = c.attrs["HostConfig"]
    memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    want = MEMORY_MIB * MIB
    if memory == want:
        lines.append(Line(True, f"its memory limit is {MEMORY_MIB} MiB"))
    elif not memory and host.get("MemoryReservation"):
        lines.append(Line(False, f"it has a memory reservation of "
                                 f"{_mib(host['MemoryReservation'])} and no limit: a reservation "
                                 "is a soft target the kernel reclaims towards when memory runs "
                                 "short, not a cap",
                          f"remove it and run it again with a memory limit of {MEMORY_MIB} MiB"))
    else:
        lines.append(Line(False, f"its memory limit is {_mib(memory) if memory else 'none'}, "
                                 f"not {MEMORY_MIB} MiB",
                          f"remove it and run it again with a memory limit of {MEMORY_MIB} MiB"))
    if memory and swap == memory:
        lines.append(Line(True, "memory and swap together are capped at the same figure: no swap"))
    elif memory and not client.info().get("SwapLimit", True):
        lines.append(Line(True, "this kernel cannot limit swap (docker info warns: no swap limit "
                                "support), so the memory limit is all there is"))
    elif memory:
        total = "unlimited" if swap < 0 else _mib(swap)
        lines.append(Line(False, f"memory and swap together may reach {total}: past its memory "
                                 "limit it can still swap",
                          "the swap option counts memory and swap together: make it equal to "
                          "the memory limit"))
    quota = host.get("CpuQuota") or 0     # --cpu-quota, per period (100 ms unless set)
    cpus = (host.get("NanoCpus") or 0) / 1e9 or \
        (quota / (host.get("CpuPeriod") or 100_000) if quota > 0 else 0)
    if cpus == CPUS:
        lines.append(Line(True, f"it may use at most {CPUS} CPU"))
    elif host.get("CpuShares") and not cpus:
        lines.append(Line(False, f"it has CPU shares ({host['CpuShares']}) and no cap: shares "
                                 "only weigh containers against each other when CPUs are busy",
                          f"cap it at {CPUS} CPU instead"))
    else:
        lines.append(Line(False, f"its CPU cap is {cpus:g} CPUs" if cpus else "it has no CPU cap",
                          f"cap it at {CPUS} CPU"))
    said = c.exec_run(["sh", "-c", CGROUP_MEMORY]).output.decode(errors="replace").strip()
    enforced = said.isdigit() and int(said) == want
    read = _mib(int(said)) if said.isdigit() and int(said) < 2**50 else \
        "no limit" if said.isdigit() or said == "max" else repr(said)
    lines.append(Line(enforced, f"the kernel enforces {MEMORY_MIB} MiB in its cgroup" if enforced
                      else f"the kernel's limit in its cgroup is {read}, not {MEMORY_MIB} MiB",
                      "" if enforced else "the kernel takes the limit from docker run's memory "
                                          "option"))
    return lines


# ---------------------------------------------------------------- predictions (before the cell)

def predict(name: str):
    """A prediction asked before the cell that shows the answer: `predict("uptime")`."""
    return _predict(name, notebook="07")


question("predict-07-uptime.q", "The container course07-sleeper started a few seconds ago. What "
         "does /proc/uptime (seconds since its kernel booted) say inside it?",
         ["A few seconds: it booted when it started",
          "The host's uptime, hours or days: no kernel booted for it",
          "Nothing: a container has no uptime"], 1,
         "/proc/uptime is the kernel's, and the container runs on the host's kernel, so it "
         "reads the host's figure, like the boot ID does. A VM's kernel boots with the VM, so "
         "inside a VM it is a few seconds.")


# ---------------------------------------------------------------- the quiz

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
question("07.same", "The same image runs on your laptop, in CI and in production. What is the "
         "same in all three places?",
         ["Everything, the kernel included", "The image's files, byte for byte (its ID says "
          "so); the kernel is each machine's own", "Only the application's code"], 1,
         "An image carries files and settings, never a kernel. Its ID (and its digest in a "
         "registry) names exactly those bytes, so all three run the same user space. Each runs "
         "it on its own kernel, as the VM above ran the busybox image on a kernel of its own.")
question("07.isolation", "A program breaks out of a container through a bug in the Linux kernel. "
         "What is at risk?",
         ["Only that container", "The host and every container on it: they all share that one "
          "kernel", "Nothing: namespaces stop kernel bugs"], 1,
         "Namespaces and cgroups are features of the one kernel every container calls into; a "
         "flaw reachable from one container is reachable from all. A VM's guest has its own "
         "kernel, and only the hypervisor's much narrower interface stands between tenants.")
question("07.gvisor", "What is gVisor?",
         ["A VM with a small Linux kernel",
          "A kernel written as an ordinary program, in user space, that answers the container's "
          "system calls so that few reach the host's kernel",
          "Docker's name for rootless mode"], 1,
         "gVisor boots no guest kernel and emulates no hardware, so it is not a VM: it stands "
         "between the container and the host's kernel, answering most system calls itself. "
         "Kata Containers and Firecracker, by contrast, do run each workload in a light VM.")
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
    box.slider, box.reveal, box.output, box.button = slider, reveal, out, button
    return box
