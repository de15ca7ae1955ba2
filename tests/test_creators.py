"""Every public function that creates an engine resource takes the lesson (or `labels=`), with
no default; what it makes carries that lesson's label and is in the creation record.

The fast half reads helpers' source. A function creates when it calls one of the SDK's or the
CLI's create calls (CREATE_CALLS, CLI_WORDS), or, within helpers, a function or class that does;
a class creates when one of its methods does. So a creator added later is found without being
named here. The engine half calls each one with Lesson(99), reads the engine's events for what
it made, and finds every such thing labelled 99 and recorded; Lesson(99).clean_up() leaves none.
"""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
import linecache
import pkgutil
import re
import textwrap
import time
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parent.parent
NN = "99"

# (owner, method) pairs that make a container, image, volume, network or Compose project.
CREATE_CALLS = {
    ("containers", "run"), ("containers", "create"), ("images", "build"), ("images", "load"),
    ("images", "pull"), ("volumes", "create"), ("networks", "create"),
    ("api", "create_container"), ("api", "build"), ("api", "create_volume"),
    ("api", "create_network"), ("api", "import_image"), ("api", "pull"), ("api", "load_image"),
    ("buildx", "build"), ("compose", "up"), ("compose", "run"), ("compose", "create"),
    ("compose", "build")}
# A command line (a list of words) naming the docker CLI and one of its creating verbs.
CLI_TOOLS = {"docker", "buildx", "compose"}
CLI_VERBS = {"run", "create", "build", "up", "load", "import", "commit"}
# Calls through a table the scanner cannot follow: VM starts QEMU through BACKENDS.
DISPATCH = {"helpers.measure.guest.VM": ["helpers.measure.guest.ContainerQemu",
                                         "helpers.measure.guest.HostQemu"]}

# Creators that take no lesson, each with the reason. Their callers need none for them.
EXEMPT = {
    "helpers.course.images.build_offline": "builds a kit image: the course's base images are "
        "shared by every lesson, carry the kit's labels and stay after clean-up",
    "helpers.course.images.ensure_images": "makes the kit's images present (see build_offline)",
    "helpers.course.images.load_bundle": "loads the kit's images from the instructor's bundle",
    "helpers.course.images.pull": "pulls a kit image (see build_offline)",
    "helpers.course.images.main": "`python -m helpers.images`: the kit's images only",
    "helpers.course.setup.main": "`python -m helpers.setup`: prepares the kit's images",
    "helpers.course.buildkit.Buildx": "runs `docker buildx build ARGS` as given; its one caller, "
        "helpers.course.builder.build, requires labels= and puts them into ARGS",
}
# Creators of a lesson's things whose signature differs from the rule, each with the reason.
SIGNATURE = {
    "helpers.measure.bench.main": "`python -m helpers.bench`: the instructors' run, which "
        "belongs to lesson 07 and is recorded as such",
}


# ------------------------------------------------------------------------- the scanner

def _modules():
    return [importlib.import_module(info.name)
            for info in pkgutil.walk_packages(helpers.__path__, "helpers.")]


def _unwrap(member):
    if isinstance(member, (staticmethod, classmethod)):
        return member.__func__
    if isinstance(member, property):
        return member.fget
    return member


def functions() -> dict:
    """{qualified name: (function, its class or None)} for every function helpers defines."""
    found = {}
    for mod in _modules():
        for name, obj in vars(mod).items():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj):
                found[f"{mod.__name__}.{name}"] = (obj, None)
            elif inspect.isclass(obj):
                for mname, member in vars(obj).items():
                    member = _unwrap(member)
                    if inspect.isfunction(member):
                        found[f"{mod.__name__}.{obj.__qualname__}.{mname}"] = (member, obj)
    return found


def _tree(fn):
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None


def direct_calls(tree) -> list[str]:
    """The creating calls a function's own source makes."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            value = node.func.value
            owner = value.attr if isinstance(value, ast.Attribute) else \
                value.id if isinstance(value, ast.Name) else None
            if (owner, node.func.attr) in CREATE_CALLS:
                hits.append(f"{owner}.{node.func.attr}")
        if isinstance(node, (ast.List, ast.Tuple)):
            words = {n.value for e in node.elts for n in ast.walk(e)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            if words & CLI_TOOLS and words & CLI_VERBS:
                hits.append(" ".join(sorted(words & (CLI_TOOLS | CLI_VERBS))))
    return hits


def _key(obj) -> str | None:
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and \
            str(getattr(obj, "__module__", "")).startswith("helpers"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return None


def callees(fn, cls, tree) -> set:
    """What a function refers to within helpers: names in its module or imported in its body,
    `module.name`, and `self.method`."""
    space = dict(fn.__globals__)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
            mod = importlib.import_module(node.module)
            for alias in node.names:
                space[alias.asname or alias.name] = getattr(mod, alias.name, None)
    out = set()
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Name):
            target = space.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in ("self", "cls") and cls is not None:
                owner = next((k for k in cls.__mro__ if node.attr in vars(k)), None)
                if owner is not None and inspect.isfunction(_unwrap(vars(owner)[node.attr])):
                    out.add(f"{owner.__module__}.{owner.__qualname__}.{node.attr}")
            else:
                owner = space.get(node.value.id)
                if inspect.ismodule(owner) and owner.__name__.startswith("helpers"):
                    target = getattr(owner, node.attr, None)
        if _key(target):
            out.add(_key(target))
    return out


def exercise_module(name: str) -> bool:
    """An exercise's helpers belong to its lesson: nbNN labels with NN (checked below)."""
    return re.match(r"helpers\.exercises\.nb\d\d\.", name) is not None


def scan(only: dict | None = None, stop: bool = True) -> tuple[set, dict, dict]:
    """(every creating function and class, all functions, direct hits by name), of helpers or
    of `only` ({name: (function, class)}). With `stop`, exempt functions and exercises make no
    caller a creator."""
    funcs = only if only is not None else functions()
    hits, graph, members = {}, {}, {}
    for name, (fn, cls) in funcs.items():
        tree = _tree(fn)
        if tree is None:
            continue
        hits[name] = direct_calls(tree)
        graph[name] = callees(fn, cls, tree)
        if cls is not None:
            members.setdefault(_key(cls), set()).add(name)
    for cls, targets in DISPATCH.items():
        members.setdefault(cls, set()).add(f"{cls}.<dispatch>")
        graph[f"{cls}.<dispatch>"] = set(targets)
    stops = (set(EXEMPT) | {n for n in funcs if exercise_module(n)}) if stop else set()
    creating = {n for n, h in hits.items() if h}
    grew = True
    while grew:
        before = len(creating)
        for cls, names in members.items():
            if names & creating:
                creating.add(cls)
        for name, refs in graph.items():
            if (refs & creating) - stops:
                creating.add(name)
        grew = len(creating) > before
    return creating, funcs, hits


@functools.lru_cache(maxsize=None)
def scanned(stop: bool = True) -> tuple[set, dict, dict]:
    """helpers, scanned once per test run."""
    return scan(stop=stop)


def public(name: str) -> bool:
    parts = name.split(".")[1:]
    return not any(p.startswith("_") and not p.startswith("__") for p in parts) or \
        parts[-1] == "__init__" and not any(p.startswith("_") for p in parts[:-1])


def _takes_lesson(fn) -> bool:
    """`lesson` or `labels` as a keyword a caller must give (keyword-only, no default)."""
    params = inspect.signature(fn).parameters
    return any(p.name in ("lesson", "labels") and p.default is inspect.Parameter.empty and
               p.kind == p.KEYWORD_ONLY for p in params.values())


def _class_takes_lesson(cls) -> bool:
    """Its constructor takes the lesson, or an object that carries one (a Stack)."""
    if not inspect.isfunction(cls.__init__):
        return False
    if _takes_lesson(cls.__init__):
        return True
    hints = cls.__init__.__annotations__
    for p in inspect.signature(cls.__init__).parameters.values():
        kind = hints.get(p.name)
        kind = cls.__init__.__globals__.get(kind) if isinstance(kind, str) else kind
        if p.default is inspect.Parameter.empty and inspect.isclass(kind) and \
                _key(kind) and _class_takes_lesson(kind):
            return True
    return False


def _resolve(name: str):
    mod, _, rest = name.partition(".")
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(name)


def creators() -> dict:
    """{name: what it is} of every public creating function and class, exemptions left out,
    methods folded into their class."""
    creating, funcs, _ = scanned()
    found = {}
    for name in sorted(creating):
        if not public(name) or name in EXEMPT or exercise_module(name) or "<" in name:
            continue
        if name in funcs and funcs[name][1] is not None:   # a method: its class answers
            continue
        found[name] = _resolve(name)
    return found


def _creator_ok(name: str, obj, creating: set, funcs: dict) -> bool:
    if not inspect.isclass(obj):
        return _takes_lesson(obj)
    methods = [fn for n, (fn, cls) in funcs.items() if cls is obj and n in creating
               and not n.endswith(".__init__")]
    return _class_takes_lesson(obj) or bool(methods) and all(map(_takes_lesson, methods))


# ------------------------------------------------------------------------- the fast half

def test_the_scanner_finds_a_creator_and_its_callers():
    """A function that creates directly, one that calls it, and one that only reads."""
    source = textwrap.dedent('''
        def makes(client):
            client.volumes.create("v")
        def runs_cli():
            subprocess.run(["docker", "run", "--rm", "busybox:1.35", "true"])
        def calls_it(client):
            return makes(client)
        def reads(client):
            return client.volumes.list()
    ''')
    filename = "<helpers.fake>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"subprocess": None, "__name__": "helpers.fake"}
    exec(compile(source, filename, "exec"), namespace)
    names = ("makes", "runs_cli", "calls_it", "reads")
    creating, _, hits = scan({f"helpers.fake.{n}": (namespace[n], None) for n in names})
    assert {"helpers.fake.makes", "helpers.fake.runs_cli", "helpers.fake.calls_it"} <= creating
    assert "helpers.fake.reads" not in creating
    assert hits["helpers.fake.makes"] == ["volumes.create"]
    takes = lambda text: _takes_lesson(eval(f"lambda {text}: None"))
    assert takes("client, *, lesson") and takes("*, labels") and not takes("lesson, image")
    assert not takes("client, lesson=None") and not takes("client, nn=2")


def test_every_creator_takes_the_lesson_or_labels_with_no_default():
    wrong = []
    creating, funcs, _ = scanned()
    for name, obj in creators().items():
        if name not in SIGNATURE and not _creator_ok(name, obj, creating, funcs):
            wrong.append(f"{name}{inspect.signature(obj)}")
    assert not wrong, ("These create engine resources but take no lesson= (or labels=) without "
                       "a default; add one, or list them in EXEMPT with the reason:\n" +
                       "\n".join(wrong))


def test_every_exemption_names_a_creator():
    creating, _, _ = scanned(stop=False)
    stale = [n for n in {**EXEMPT, **SIGNATURE} if n not in creating]
    assert not stale, f"EXEMPT names what creates nothing (or no longer exists): {stale}"


def notebook_numbers(path: Path) -> list:
    """Notebook numbers the code (not its docstrings) names: `Lesson(7)`, `labels(3)`,
    `notebook_id(2)`, `nn=5` in a call, and a number as the default of `nn` or `lesson`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("Lesson", "labels", "notebook_id", "label_filter", "clean_up"):
                found += [a.value for a in node.args[:1] if isinstance(a, ast.Constant)
                          and isinstance(a.value, (int, str)) and str(a.value).isdigit()]
            found += [k.value.value for k in node.keywords if k.arg == "nn"
                      and isinstance(k.value, ast.Constant) and k.value.value is not None]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            pairs = list(zip(args.args[::-1], args.defaults[::-1])) + \
                [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            found += [d.value for a, d in pairs if a.arg in ("nn", "lesson")
                      and isinstance(d, ast.Constant) and d.value is not None]
    return found


def test_no_library_module_has_a_default_notebook_number():
    """A lesson's number is given by the lesson; only an exercise's module names its own."""
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        own = re.fullmatch(r"nb(\d\d)\.py", path.name)
        numbers = notebook_numbers(path)
        if own:
            assert {int(n) for n in numbers} <= {int(own[1])}, \
                f"{path.name} labels with another lesson's number: {numbers}"
        elif path.name != "bench.py" or numbers != [7]:   # `python -m helpers.bench`: 07's
            assert not numbers, f"{path.relative_to(ROOT)} assumes notebook {numbers}"


def test_every_creator_is_called_below_or_says_why_not():
    named = set(CALLS) | set(NOT_CALLED)
    found = set(creators())
    assert found - named == set(), f"creators the engine test neither calls nor excuses: " \
                                   f"{sorted(found - named)}"
    assert named - found == set(), f"named here but not found creating: {sorted(named - found)}"


PRIVATE = re.compile(r"^_(?!_)")


def _private_uses(path: Path) -> list[str]:
    """docker-py's private names: `from docker... import _x`, and `_x` read off anything
    reached through a client (`client.api._get`, `x.api._version`) or the docker package."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "docker":
            uses += [f"from {node.module} import {a.name}" for a in node.names
                     if PRIVATE.match(a.name)]
        elif isinstance(node, ast.Attribute) and PRIVATE.match(node.attr):
            chain = ast.unparse(node.value)
            if re.search(r"(^|\.)(api|client)\b|^docker\b", chain):
                uses.append(ast.unparse(node))
    return uses


def test_private_docker_py_names_only_in_the_engine_seam():
    seam = ROOT / "helpers" / "course" / "engine.py"
    outside = {str(p.relative_to(ROOT)): u for p in sorted((ROOT / "helpers").rglob("*.py"))
               if p != seam and (u := _private_uses(p))}
    assert not outside, f"docker-py's private names outside helpers/course/engine.py: {outside}"
    assert _private_uses(seam), "the seam's own uses are what the engine test calls"


# ------------------------------------------------------------------------- the engine half

COMPOSE = """\
name: {project}
services:
  sleeper:
    image: {busybox}
    command: ["sleep", "60"]
    init: true
    labels:
      dockercourse.notebook: "99"
networks:
  default:
    labels:
      dockercourse.notebook: "99"
"""


def _context(tmp_path: Path, kit, by: str) -> Path:
    """A build context whose image is this caller's own (no other call's cache hit)."""
    (tmp_path / "Dockerfile").write_text(f"FROM {kit['busybox']}\nRUN echo {by} > /made\n")
    return tmp_path


def _stack(lesson, kit, tmp_path):
    from helpers.course.compose import Stack
    project = "course99creators"
    (tmp_path / "compose.yaml").write_text(COMPOSE.format(project=project,
                                                          busybox=kit["busybox"]))
    Stack([tmp_path / "compose.yaml"], project, lesson=lesson).up(wait=False)


def _editor(lesson, kit, tmp_path):
    from helpers.labs.dockerfile_editor import DockerfileEditor
    editor = DockerfileEditor(folder=_context(tmp_path, kit, "editor"), samples={},
                              tag="course99.invalid/creators-editor", lesson=lesson)
    editor.text.value = (tmp_path / "Dockerfile").read_text()
    assert editor.build().ok


def _image_kit(lesson, kit, tmp_path, monkeypatch, start=False):
    """The VM image's side, copied out afresh (a container that never starts)."""
    from helpers.course.images import ensure_images
    from helpers.measure import vmkit
    ensure_images(lesson.client, names=["vmkit"], allow_pull=False)   # a kit image: it stays
    monkeypatch.setattr(vmkit, "VM_CACHE", tmp_path)
    monkeypatch.setattr(vmkit, "_IMAGE_KITS", {})
    monkeypatch.setenv("DOCKERCOURSE_VM", "image")
    try:
        k = vmkit.kit(lesson=lesson)
    except vmkit.VmUnavailable as exc:
        pytest.skip(f"no VM image: {exc}")
    if start:   # QEMU's container, with a command that boots nothing
        from helpers.measure.guest import ContainerQemu
        qemu = ContainerQemu(k, lesson=lesson)
        qemu.start(["qemu-system-x86_64", "--version"], "tcg", None)
        qemu.stop()


def _volume_lab(lesson, kit, tmp_path):
    from helpers.labs.volumes import VolumeLab
    lab = VolumeLab(volume="course99-creators-lab", folder=tmp_path, lesson=lesson)
    lab.run()
    assert lab.results


def _browser(lesson, kit, tmp_path):
    from helpers.labs.volumes import VolumeBrowser, ensure_volume
    ensure_volume("course99-creators-b", lesson=lesson)
    browser = VolumeBrowser(via="container", lesson=lesson)
    browser.refresh()
    browser.choice.value = "course99-creators-b"
    browser.show_files()


def _call(path: str, *args, **kwargs):
    return lambda lesson, kit, tmp_path, **_: _resolve(path)(
        *[a(lesson, kit, tmp_path) if callable(a) else a for a in args],
        **{k: (v(lesson, kit, tmp_path) if callable(v) else v) for k, v in kwargs.items()})


LESSON = lambda lesson, kit, tmp_path: lesson
BUSYBOX = lambda lesson, kit, tmp_path: kit["busybox"]

# name -> how to call it cheaply for Lesson(99): fn(lesson, kit, tmp_path, monkeypatch=...)
CALLS = {
    "helpers.course.builder.build": lambda lesson, kit, tmp_path, **_: _resolve(
        "helpers.course.builder.build")(lesson.client, _context(tmp_path, kit, "build"),
                                        "course99.invalid/creators-build",
                                        labels=lesson.labels, progress=False),
    "helpers.course.compose.Stack": lambda lesson, kit, tmp_path, **_: _stack(lesson, kit,
                                                                              tmp_path),
    "helpers.course.fence.run_fenced": _call("helpers.course.fence.run_fenced", BUSYBOX,
                                             ["true"], lesson=LESSON),
    "helpers.labs.dockerfile_editor.DockerfileEditor": lambda lesson, kit, tmp_path, **_:
        _editor(lesson, kit, tmp_path),
    "helpers.labs.entrypoint_lab.EntrypointTable": lambda lesson, kit, tmp_path, **_:
        _resolve("helpers.labs.entrypoint_lab.EntrypointTable")(lesson=lesson).run(
            "exec", "exec", ""),
    "helpers.labs.entrypoint_lab.try_combination": _call(
        "helpers.labs.entrypoint_lab.try_combination", "shell", "none", lesson=LESSON),
    "helpers.labs.lifecycle.LifecyclePanel": lambda lesson, kit, tmp_path, **_:
        _resolve("helpers.labs.lifecycle.LifecyclePanel")(
            kit["busybox"], ["sleep", "30"], lesson=lesson,
            name="course99-creators-life").do("create"),
    "helpers.labs.port_publisher.PortPublisher": lambda lesson, kit, tmp_path, **_:
        _resolve("helpers.labs.port_publisher.PortPublisher")(
            kit["python"], 8080, lesson=lesson).publish(),
    "helpers.labs.preflight.Preflight": lambda lesson, kit, tmp_path, **_:
        _resolve("helpers.labs.preflight.Preflight")(lesson=lesson).run(),
    "helpers.labs.preflight.check_kvm": _call("helpers.labs.preflight.check_kvm",
                                              lesson=LESSON),
    "helpers.labs.volumes.ensure_volume": _call("helpers.labs.volumes.ensure_volume",
                                                "course99-creators", lesson=LESSON),
    "helpers.labs.volumes.run_fenced": _call("helpers.labs.volumes.run_fenced", ["true"],
                                             lesson=LESSON),
    "helpers.labs.volumes.survival": _call("helpers.labs.volumes.survival", "named volume",
                                           volume="course99-creators-s", lesson=LESSON),
    "helpers.labs.volumes.volume_files": lambda lesson, kit, tmp_path, **_: (
        _resolve("helpers.labs.volumes.ensure_volume")("course99-creators-f", lesson=lesson),
        _resolve("helpers.labs.volumes.volume_files")("course99-creators-f", via="container",
                                                      lesson=lesson)),
    "helpers.labs.volumes.read_volume_file": lambda lesson, kit, tmp_path, **_: (
        _resolve("helpers.labs.volumes.survival")("named volume", volume="course99-creators-r",
                                                  lesson=lesson),
        _resolve("helpers.labs.volumes.read_volume_file")("course99-creators-r", "note.txt",
                                                          via="container", lesson=lesson)),
    "helpers.labs.volumes.VolumeLab": lambda lesson, kit, tmp_path, **_:
        _volume_lab(lesson, kit, tmp_path),
    "helpers.labs.volumes.VolumeBrowser": lambda lesson, kit, tmp_path, **_:
        _browser(lesson, kit, tmp_path),
    "helpers.measure.sampler.container_workload": _call(
        "helpers.measure.sampler.container_workload", BUSYBOX, "echo hi; echo END",
        "END", lesson=LESSON),
    "helpers.measure.sampler.container_start_s": _call(
        "helpers.measure.sampler.container_start_s", BUSYBOX, lesson=LESSON),
    "helpers.measure.sampler.cli_run_s": lambda lesson, kit, tmp_path, **_: _resolve(
        "helpers.measure.sampler.cli_run_s")(kit["busybox"], labels=lesson.labels),
    "helpers.measure.vmkit.kit": lambda lesson, kit, tmp_path, monkeypatch: _image_kit(
        lesson, kit, tmp_path, monkeypatch),
    "helpers.measure.vmkit.image_kit": lambda lesson, kit, tmp_path, monkeypatch: _image_kit(
        lesson, kit, tmp_path, monkeypatch),
    "helpers.measure.vmkit.image_initramfs": lambda lesson, kit, tmp_path, monkeypatch: (
        monkeypatch.setattr(_resolve("helpers.measure.vmkit"), "VM_CACHE", tmp_path),
        _resolve("helpers.measure.vmkit.image_initramfs")(kit["busybox"], lesson=lesson)),
    "helpers.measure.vmkit.accelerator": _call("helpers.measure.vmkit.accelerator",
                                               lesson=LESSON),
    "helpers.measure.vmkit.probe_kvm": _call("helpers.measure.vmkit.probe_kvm", lesson=LESSON),
    "helpers.measure.guest.ContainerQemu": lambda lesson, kit, tmp_path, monkeypatch:
        _image_kit(lesson, kit, tmp_path, monkeypatch, start=True),
}

# Where KVM cannot work (the preflight says why at once), these boot no probe and make nothing.
CREATE_NOTHING_HERE = {"helpers.labs.preflight.Preflight", "helpers.labs.preflight.check_kvm",
                       "helpers.measure.vmkit.accelerator", "helpers.measure.vmkit.probe_kvm"}

BOOTS = "boots QEMU; the container it makes is ContainerQemu's, called here with a command " \
        "that boots nothing"
BENCHMARK = "a benchmark of seconds to minutes; it creates through container_workload, " \
            "cli_run_s, VM and the SDK, whose labels and record are checked here"
NOT_CALLED = {
    "helpers.measure.guest.VM": BOOTS,
    "helpers.measure.guest.boot_s": BOOTS,
    "helpers.labs.live_panel.LivePanel": BOOTS,
    "helpers.labs.health_panel.HealthPanel": "creates only through its Stack (called here)",
    "helpers.labs.stack_panel.ProjectPanel": "creates only through its Stack (called here)",
    "helpers.labs.stack_panel.StackPanel": "creates only through its Stack (called here)",
    **{f"helpers.measure.comparison.{n}": BENCHMARK for n in (
        "build_vs_provision", "container_vs_vm", "disk", "recovery", "stack",
        "start_and_memory", "write_throughput")},
    **{f"helpers.measure.bench.{n}": BENCHMARK for n in (
        "boot_all", "container_memory", "container_vs_vm", "density", "memory_of_each",
        "sampler_cost", "startup_and_cpu", "vm_memory")},
    "helpers.measure.machine.VmSide": BOOTS,
    "helpers.measure.machine.vm_side": "reads the kit through vmkit.kit (called here)",
    "helpers.measure.machine.machine": "reads the kit through vmkit.kit (called here)",
    **{f"helpers.measure.bench.{n}": BENCHMARK for n in (
        "build_vs_provision", "disk_footprint", "many_containers_vs_vm", "recovery", "stack",
        "write_throughput", "main")},
}


def _events(client, since: float) -> list:
    """What was created from `since` (seconds, to the microsecond) until now."""
    until = f"{time.time() + 0.5:.6f}"
    return [e for e in client.events(since=f"{since:.6f}", until=until, decode=True)
            if (e.get("Type"), e.get("Action")) in
            {("container", "create"), ("volume", "create"), ("network", "create"),
             ("image", "tag"), ("image", "load"), ("image", "import")}]


def _labels_of(client, kind: str, key: str) -> dict | None:
    """The labels of what still exists (None once it is gone)."""
    from docker.errors import NotFound
    try:
        if kind == "container":
            return client.containers.get(key).labels
        if kind == "volume":
            return client.volumes.get(key).attrs.get("Labels") or {}
        if kind == "network":
            return client.networks.get(key).attrs.get("Labels") or {}
        return client.images.get(key).labels or {}
    except NotFound:
        return None


MADE: list = []   # (kind, key) of everything the calls below made, for the last test


@pytest.mark.parametrize("name", sorted(CALLS))
def test_what_each_creator_makes_is_labelled_and_recorded(name, lesson, kit, tmp_path,
                                                          monkeypatch):
    from helpers.course import record
    from helpers.course.labels import LABEL
    mine = lesson     # Lesson(99)
    client = mine.client
    since = time.time()
    CALLS[name](mine, kit, tmp_path, monkeypatch=monkeypatch)
    problems, made = [], 0
    projects = set(record.entries(client, "projects", NN))
    for event in _events(client, since):
        kind, actor = event["Type"], event["Actor"]
        key = actor["ID"]   # a volume's is its name
        if kind == "volume" and re.fullmatch(r"[0-9a-f]{64}", key or ""):
            continue   # an image's anonymous volume: it goes with its container (rm -v)
        labels = _labels_of(client, kind, key)
        if labels is None:   # made and removed by the call: a container's event says its labels
            labels = actor.get("Attributes", {}) if kind == "container" else {}
            made += labels.get(LABEL) == NN
            continue
        if labels.get(LABEL) != NN:
            continue   # the engine is shared: what others made meanwhile is not judged here
        made += 1
        MADE.append((kind, key))
        project = labels.get("com.docker.compose.project")
        kinds = {"container": "containers", "volume": "volumes", "network": "networks",
                 "image": "images"}
        if key not in record.entries(client, kinds[kind], NN) and project not in projects:
            problems.append(f"{kind} {key[:24]} is not in lesson {NN}'s record")
    assert not problems, "\n".join(problems)
    if name not in CREATE_NOTHING_HERE:
        assert made, f"{name} made nothing labelled {NN}"


def test_kit_containers_carry_the_kit_label_and_the_lesson(lesson, kit, tmp_path, monkeypatch):
    """The VM image's pieces are copied out through a container of the lesson that asked."""
    from helpers.course.images import KIT_LABEL
    from helpers.course.labels import LABEL
    from helpers.course.lesson import Lesson
    mine = Lesson(NN)
    since = time.time()
    _image_kit(mine, kit, tmp_path, monkeypatch, start=True)
    made = [e["Actor"]["Attributes"] for e in _events(mine.client, since)
            if e["Type"] == "container"]
    assert len(made) == 2, made     # one copies the pieces out, one runs QEMU
    for labels in made:
        assert labels.get(KIT_LABEL) == "vmkit" and labels.get(LABEL) == NN, labels


def test_clean_up_leaves_nothing_of_lesson_99(lesson):
    """Runs after the calls above: everything they made, recorded, goes with the lesson's
    clean-up, and nothing labelled 99 that they made is left."""
    from helpers.course.labels import label_filter
    from helpers.course.lesson import Lesson
    mine = Lesson(NN)
    client = mine.client
    report = mine.clean_up()
    assert not report.problems, report.problems
    left = [(kind, key) for kind, key in MADE if _labels_of(client, kind, key) is not None]
    assert not left, f"left after Lesson(99).clean_up(): {left}"
    ours = {key for _, key in MADE}
    labelled = [c.id for c in client.containers.list(all=True, filters=label_filter(NN))] + \
        [v.name for v in client.volumes.list(filters=label_filter(NN))] + \
        [n.id for n in client.networks.list(filters=label_filter(NN))] + \
        [i.id for i in client.images.list(filters=label_filter(NN))]
    assert not ours & set(labelled)
