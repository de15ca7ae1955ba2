"""The lessons 00-03 and 07 teach as the course promises: the real `docker` command first, exercises whose
shown answers are what their solutions run and whose checks reject plausible wrong attempts,
predictions before the cells that answer them, no known factual slips, and each notebook's goals,
time estimate, summary and cheat sheet."""
import json
import re
from pathlib import Path

import pytest

from helpers.exercises import all_exercises, get, run_check
from helpers.course.labels import clean_up

ROOT = Path(__file__).resolve().parent.parent
TAUGHT = ("00", "01", "02", "03", "07")     # the lessons held to this standard
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0[0-9]-*.ipynb"))
             if p.name[:2] in TAUGHT}
ALL_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
WORDS_PER_MINUTE, MINUTES_PER_CODE_CELL = 200, 1.5   # the time estimate's method

# Sentences that once said something false; none may come back, anywhere in the course.
SLIPS = [
    "instructions that change no files make 0-byte layers",
    "a step whose instruction, and whose copied files, are unchanged since the previous step "
    "is taken from the cache",
    "If your own `docker build` uses BuildKit (Docker Desktop does)",
    "A failed build leaves nothing half-built behind",
    "labels inherited from the base image",
    "the same content always has the same ID",
    "nothing outside can reach it",
    "Docker is two programs",
    "put containers inside VMs (Firecracker, gVisor, Kata)",     # gVisor is no VM
]


def cells(nn):
    return json.loads(NOTEBOOKS[nn].read_text())["cells"]


def source(cell) -> str:
    return "".join(cell["source"])


def flat(text: str) -> str:
    """Lower case, markdown emphasis gone, whitespace as single spaces: what a reader reads."""
    return re.sub(r"\s+", " ", text.replace("**", "")).lower()


def docker_commands(script: str) -> list:
    """The `docker ...` command lines of a %%docker cell: continuations joined, heredoc bodies
    and comments left out."""
    script = script.replace("\\\n", " ")
    found, heredoc = [], None
    for line in script.splitlines()[1:]:
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if m := re.search(r"<<-?'?(\w+)'?", line):
            heredoc = m.group(1)
        code = line.split(" #")[0].strip()
        if code.startswith("#"):
            continue
        for part in re.split(r"\|\||&&|\||;|\$\(", code):
            words = part.strip().split()
            while words and words[0] in ("time", "timeout", "echo") or (words and
                                                                       words[0].isdigit()):
                words = words[1:]
            if words and words[0] == "docker":
                found.append(" ".join(words))
    return found


def subcommand(command: str) -> str:
    words = [w for w in command.split()[1:] if not w.startswith("-")]
    if words and words[0] in ("image", "container", "context", "system", "buildx"):
        return " ".join(words[:2])
    return words[0] if words else ""


# ---------------------------------------------------------------- no slips

def test_no_known_slip_remains_in_any_notebook_or_helper():
    texts = {p: "".join(source(c) for c in json.loads(p.read_text())["cells"])
             for p in ALL_NOTEBOOKS}
    texts.update({p: p.read_text() for p in (ROOT / "helpers").rglob("*.py")})
    texts[ROOT / "notebooks" / "glossary.md"] = (ROOT / "notebooks" / "glossary.md").read_text()
    for path, text in texts.items():
        for slip in SLIPS:
            assert flat(slip) not in flat(text), f"{path.name}: {slip!r}"


def test_the_slips_are_corrected_where_they_were():
    t00 = flat("".join(source(c) for c in cells("00")))
    for word in ("containerd", "runc", "wsl 2", "docker desktop on linux", "remote engine"):
        assert word in t00, word
    t03 = flat("".join(source(c) for c in cells("03")))
    assert "the default interval is 30 s" in t03
    assert "since engine 23, `docker build` uses buildkit everywhere" in t03
    assert "its instruction and every step before it are unchanged" in t03
    assert "carries none" in t03            # the official python:3.11-slim has no labels
    t02 = flat("".join(source(c) for c in cells("02")))
    assert "on linux the host itself can" in t02
    t07 = flat("".join(source(c) for c in cells("07")))
    assert "gvisor takes a third way and is not a vm" in t07
    assert "a kernel written as an ordinary program, running in user space" in t07


# ---------------------------------------------------------------- the CLI first

@pytest.mark.parametrize("nn,least", [("00", 2), ("01", 5), ("02", 5), ("03", 5), ("07", 5)])
def test_each_lesson_runs_distinct_docker_commands_through_the_magic(nn, least):
    magic = [source(c) for c in cells(nn) if c["cell_type"] == "code"
             and source(c).startswith("%%docker")]
    commands = [cmd for cell in magic for cmd in docker_commands(cell)]
    distinct = {subcommand(c) for c in commands}
    assert len(distinct) >= least, (nn, distinct)
    for cmd in commands:
        words = cmd.split()
        if subcommand(cmd) in ("run", "create", "build"):
            assert f"--label dockercourse.notebook={nn}" in cmd, cmd
        if "--name" in words:
            assert words[words.index("--name") + 1].startswith(f"course{nn}-"), cmd
        if subcommand(cmd) == "build" and "-t" in words:
            assert words[words.index("-t") + 1].startswith(f"course{nn}.invalid/"), cmd


@pytest.mark.parametrize("nn", TAUGHT)
def test_first_code_cell_makes_the_lesson(nn):
    first = next(c for c in cells(nn) if c["cell_type"] == "code")
    assert f"lesson = Lesson({int(nn)})" in source(first)


def test_no_cell_needs_a_terminal():
    for nn in NOTEBOOKS:
        for c in cells(nn):
            if c["cell_type"] == "code" and source(c).startswith("%%docker"):
                for cmd in docker_commands(source(c)):
                    assert not {"-it", "-ti", "--tty", "--interactive"} & set(cmd.split()), cmd


# ---------------------------------------------------------------- signposts

@pytest.mark.parametrize("nn", TAUGHT)
def test_goals_time_summary_and_cheat_sheet(nn):
    nb = cells(nn)
    first, last = source(nb[0]), source(nb[-1])
    assert "**Goals.**" in first
    m = re.search(r"about (\d+) minutes \((\d+) words to read, (\d+) code cells to run, "
                  r"(\d+) minutes of exercises\)", first)
    assert m, first
    minutes, words, code_cells, exercise = map(int, m.groups())
    real_words = sum(len(source(c).split()) for c in nb if c["cell_type"] == "markdown")
    real_code = sum(1 for c in nb if c["cell_type"] == "code")
    # the figures may lag a small edit elsewhere in the notebook, not a rewrite
    assert abs(real_words - words) <= 100 and abs(real_code - code_cells) <= 3, \
        (real_words, real_code)
    estimate = real_words / WORDS_PER_MINUTE + MINUTES_PER_CODE_CELL * real_code + exercise
    assert abs(estimate - minutes) <= 7.5, (estimate, minutes)
    assert "## Summary" in last and "### Cheat sheet" in last
    taught = {subcommand(cmd) for c in nb if c["cell_type"] == "code"
              and source(c).startswith("%%docker") for cmd in docker_commands(source(c))}
    sheet = last[last.index("### Cheat sheet"):]
    missing = {t for t in taught if f"docker {t}" not in sheet}
    assert len(missing) <= len(taught) // 3, missing   # the main ones, not every one


def test_glossary_defines_the_course_words():
    text = (ROOT / "notebooks" / "glossary.md").read_text().lower()
    for word in ("image", "layer", "container", "tag", "digest", "registry", "volume",
                 "bind mount", "namespace", "cgroup", "buildkit", "build context",
                 "compose project", "healthcheck", "kernel", "virtual machine", "hypervisor",
                 "capabilities", "seccomp", "gvisor", "boot id", "initramfs"):
        assert re.search(rf"^\*\*{re.escape(word)}", text, re.M), word


def test_03_marks_a_break_point():
    assert any("a good place for a break" in flat(source(c)) for c in cells("03"))


# ---------------------------------------------------------------- predict, then run

@pytest.mark.parametrize("nn", TAUGHT)
def test_predictions_come_before_their_answer_and_demonstrations_after_the_panel(nn):
    nb = cells(nn)
    for i, c in enumerate(nb):
        text = source(c)
        if c["cell_type"] == "code" and re.search(r"^predict\(", text, re.M):
            nxt = nb[i + 1]
            assert nxt["cell_type"] == "code" and source(nxt).startswith("%%docker"), \
                "a prediction is followed by the cell that answers it"
        if c["cell_type"] == "code" and re.search(r"\.click\(\)|editor\.build\(\)|table\.run\(|"
                                                   r"explorer\.find\(\)", text):
            assert "demonstration" in text.lower(), text[:80]
            made = [j for j, d in enumerate(nb) if d["cell_type"] == "code" and re.search(
                r"^(panel|editor|table|explorer) = ", source(d), re.M)]
            assert made and min(made) < i, text[:80]


def test_a_prediction_reveals_its_answer_only_through_its_own_choice():
    from helpers.exercises import nb02, nb03, nb07
    for quiz in (nb02.predict("oom"), nb02.predict("stop"), nb03.predict("layers"),
                 nb07.predict("uptime")):
        (item,) = quiz.items
        choice, out = item.children[1], item.children[2]
        assert out.value == ""
        choice.value = choice.options[1]
        assert "Right." in out.value


# ---------------------------------------------------------------- exercises

LESSON_EXERCISES = [i for i in sorted(all_exercises()) if i[:2] in NOTEBOOKS]


def first_command(answer: str) -> str:
    return next(line.strip() for line in answer.splitlines()
                if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("exercise_id", LESSON_EXERCISES)
def test_hints_point_the_way_without_the_answer(exercise_id):
    ex = get(exercise_id)
    assert first_command(ex.answer) not in ex.hint, exercise_id
    assert "# or in Python" in ex.answer or exercise_id == "03.nonroot", \
        "the answer shows the CLI and the SDK"


@pytest.mark.parametrize("nn", ["01", "02", "03", "07"])
def test_each_lesson_has_an_exercise_with_named_things_and_answer_cells(nn):
    mine = [get(i) for i in LESSON_EXERCISES if i.startswith(nn)]
    assert any(ex.names for ex in mine), nn
    nb = cells(nn)
    for ex in mine:
        at = next(i for i, c in enumerate(nb) if f'check_button("{ex.id}")' in source(c))
        near = nb[at - 1:at + 2]
        assert any("your answer here" in source(c) for c in near), ex.id


@pytest.fixture
def fresh(client, kit):
    def reset(exercise_id):
        ex = get(exercise_id)
        ex.reset(client)
        clean_up(ex.notebook, client)
        return ex
    yield reset
    for nn in ("01", "02", "03"):
        clean_up(nn, client)


def test_01_tag_rejects_a_tag_on_the_wrong_image_or_name(client, fresh):
    from helpers.course.cli import run
    from helpers.exercises.nb01 import MYSTERY, TAG_SDK, TAG_WRONG, prepare_mystery
    fresh("01.tag")
    prepare_mystery(client)
    try:
        for name, command in TAG_WRONG.items():
            run(command, echo=False)
            assert not run_check("01.tag", client).passed, name
            run(f"docker rmi {command.split()[-1]}", echo=False)
        exec(TAG_SDK, {"client": client})                   # the answer's Python half
        assert run_check("01.tag", client).passed
    finally:
        for tag in (f"{MYSTERY}:1.0", f"{MYSTERY}:v1.0"):
            run(f"docker rmi {tag} >/dev/null 2>&1 || true", echo=False)


def test_01_layer_cli_and_sdk_answers_agree(client, fresh):
    from helpers.exercises import ENTERED
    from helpers.exercises.nb01 import LAYER_SDK
    from helpers.course.layers import which_layer
    ex = fresh("01.layer")
    ex.solve(client)                                        # runs the answer's shell script
    by_cli = ENTERED["01.layer"]
    assert by_cli == eval(LAYER_SDK, {"client": client, "which_layer": which_layer})
    assert run_check("01.layer", client).passed
    ex.reset(client)


def test_01_push_rejects_each_named_wrong_attempt_and_wrong_digests(client, fresh):
    """Each wrong attempt on a fresh registry fails with its own reason; then the CLI answer,
    and in the field: the image's ID and the configuration's digest fail, the digest passes.
    Last, the SDK half on a fresh registry; clean-up leaves no name of the push behind."""
    from helpers.course import registry
    from helpers.course.cli import run
    from helpers.exercises import ENTERED
    from helpers.exercises.nb01 import (MYSTERY, PUSH_REPO, PUSH_SDK, PUSH_WRONG, PUSHED_NAME,
                                        prepare_mystery, start_registry)
    ex = fresh("01.push")
    prepare_mystery(client)
    said = {"tagged, never pushed": "is a name on your engine only",
            "pushed without a tag": "holds course01/mystery:latest, not course01/mystery:1.0",
            "another image under the name": "is another image"}
    try:
        for name, command in PUSH_WRONG.items():
            start_registry(client)
            run(command, echo=False)
            result = run_check("01.push", client)
            assert not result.passed and said[name] in str(result), (name, str(result))
            ex.reset(client)
        ex.solve(client)                                     # the answer's CLI half
        address = start_registry(client)
        pushed = registry.published(f"http://{address}", PUSH_REPO, "1.0")
        image = client.images.get(MYSTERY)
        wrong = {image.id: "not the digest of what was pushed",
                 pushed.config: "not the digest of what was pushed",
                 "": "the field is empty", "sha256:xyz": "is not a digest",
                 "0123456789ab": "is not the digest of"}
        for typed, text in wrong.items():
            if typed and typed == pushed.digest:
                continue    # containerd's image store: the image's ID is the pushed index's digest
            ENTERED["01.push"] = typed
            result = run_check("01.push", client)
            assert not result.passed and text in str(result), (typed, str(result))
        for typed in (pushed.digest, pushed.digest[7:19], f" {pushed.digest.upper()} "):
            ENTERED["01.push"] = typed
            assert run_check("01.push", client).passed, typed
        ex.reset(client)
        REGISTRY = start_registry(client)
        exec(PUSH_SDK, {"client": client, "REGISTRY": REGISTRY})   # the answer's Python half
        ENTERED["01.push"] = registry.published(f"http://{REGISTRY}", PUSH_REPO, "1.0").digest
        assert run_check("01.push", client).passed
    finally:
        clean_up("01", client)
    left = [t for img in client.images.list() for t in img.tags if PUSHED_NAME.fullmatch(t)]
    assert not left and not [c for c in client.containers.list(all=True)
                             if c.name == "course01-registry"]


def test_02_webapp_rejects_plausible_wrong_ports_and_passes_the_sdk_answer(client, fresh):
    from helpers.course.cli import run
    from helpers.exercises.nb02 import ANSWER_SDK, NAME, WRONG, answer_port, build_webapp
    fresh("02.webapp")
    build_webapp(client)
    port = answer_port()
    # a host address that is not loopback, to stand for 0.0.0.0 (never opened by the tests)
    gateway = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    for name, command in WRONG.items():
        before = {c.id for c in client.containers.list(all=True)}
        run(command.format(port=port, addr=gateway), echo=False)
        try:
            result = run_check("02.webapp", client)
            assert not result.passed, (name, str(result))
        finally:
            for c in client.containers.list(all=True):
                if c.id not in before:
                    c.remove(force=True)
    exec(ANSWER_SDK.format(port=port), {"client": client})   # the answer's Python half
    assert run_check("02.webapp", client).passed


@pytest.mark.parametrize("attempt,passes", [("USER_ROOT", False), ("NO_USER", False),
                                            ("NUMERIC_USER", True)])
def test_03_nonroot_judges_root_and_a_numeric_user(client, fresh, attempt, passes):
    from helpers.exercises import nb03
    fresh("03.nonroot")
    nb03.prepare(nb03.WORK)
    (nb03.WORK / "Dockerfile").write_text(getattr(nb03, attempt))
    try:
        result = run_check("03.nonroot", client)
        assert result.passed is passes, str(result)
    finally:
        get("03.nonroot").reset(client)


def test_the_web_app_names_a_uid_without_a_passwd_entry(client, kit):
    """A numeric USER with no line in /etc/passwd: the page says the uid instead of failing."""
    page = client.containers.run(
        kit["python"], ["python", "-c", "import app; print(app.user_name())"], user="4242",
        working_dir="/app", remove=True, labels={"dockercourse.notebook": "99"},
        volumes={str(ROOT / "data" / "webapp"): {"bind": "/app", "mode": "ro"}})
    assert page.decode().strip() == "4242"


# ---------------------------------------------------------------- 07: one image, two kernels

def text_of(nn) -> str:
    return flat("".join(source(c) for c in cells(nn)))


def test_07_runs_the_same_image_on_the_engine_and_in_the_vm():
    """Seed point 4 is shown, not only told: one image's files, in a container and booted in
    the VM, compared line by line; the notebook fails if the files differ."""
    code = "".join(source(c) for c in cells("07") if c["cell_type"] == "code")
    assert "vm.image_initramfs(image.id, lesson=lesson)" in code
    assert "initrd=initrd" in code
    assert 'assert sides[0]["busybox sha256"] == sides[1]["busybox sha256"]' in code
    assert code.count("vm.VM(") == 1            # one boot of its own; the lab and bench add theirs
    text = text_of("07")
    for idea in ("one environment everywhere", "what does not travel is the kernel",
                 "laptop", "the ci job", "production", "digest"):
        assert idea in text, idea


def test_07_says_what_isolation_gives_and_what_it_does_not():
    """The safety side of seed point 9, in the course's words."""
    text = text_of("07")
    for idea in ("namespaces give it its own view", "its cgroup limits", "capabilities", "seccomp",
                 "a kernel of its own", "uid 0 in a container is uid 0 on the host",
                 "--privileged", "docker.sock", "hypervisor", "kata containers", "firecracker",
                 "gvisor"):
        assert idea in text, idea


def read_newc(data: bytes) -> dict:
    """{name: (mode, body)} of a 'newc' cpio archive, as the kernel reads an initramfs."""
    found, at = {}, 0
    while True:
        head = data[at:at + 110]
        assert head[:6] == b"070701", at
        mode, size, name_size = (int(head[6 + 8 * i:14 + 8 * i], 16) for i in (1, 6, 11))
        name = data[at + 110:at + 110 + name_size - 1].decode()
        at = (at + 110 + name_size + 3) & ~3
        body, at = data[at:at + size], (at + size + 3) & ~3
        if name == "TRAILER!!!":
            return found
        found[name] = (mode, body)


def test_the_vm_guest_is_made_of_the_image_s_own_files(lesson, kit, tmp_path, monkeypatch):
    import gzip
    import hashlib
    import stat
    from helpers.measure import initramfs, vmkit
    monkeypatch.setattr(vmkit, "VM_CACHE", tmp_path)     # built afresh here, not from the cache
    client = lesson.client

    def exporters():      # containers like the one the export is made from (others' tests run)
        made = client.containers.list(all=True, filters={
            "label": "dockercourse.notebook=99", "ancestor": kit["busybox"], "status": "created"})
        return {c.id for c in made if c.attrs["HostConfig"]["NetworkMode"] == "none"}
    before = exporters()
    initrd = vmkit.image_initramfs(kit["busybox"], lesson=lesson)
    assert exporters() <= before                             # created, exported, removed
    files = read_newc(gzip.decompress(initrd.read_bytes()))
    in_image = client.containers.run(kit["busybox"], ["sha256sum", "/bin/busybox"], remove=True,
                                     labels=lesson.labels).decode().split()[0]
    assert hashlib.sha256(files["bin/busybox"][1]).hexdigest() == in_image   # byte for byte
    assert stat.S_ISLNK(files["bin/sh"][0])
    assert files["init"][1] == initramfs.INIT.encode()      # the course's one file
    assert stat.S_ISCHR(files["dev/console"][0])
    assert ".dockerenv" not in files                        # the engine's, not the image's
    assert vmkit.image_initramfs(kit["busybox"], lesson=lesson) == initrd   # once per image


def test_an_image_s_hard_links_become_symbolic_links_in_the_guest(tmp_path):
    """The public busybox image links its applets with hard links; cpio gets symbolic ones."""
    import gzip
    import io
    import stat
    import tarfile
    from helpers.measure import initramfs
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in (("bin", tarfile.DIRTYPE), ("bin/busybox", tarfile.REGTYPE),
                           ("bin/sh", tarfile.LNKTYPE), (".dockerenv", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            info.linkname = "bin/busybox" if kind == tarfile.LNKTYPE else ""
            info.size = 4 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"\x7fELF") if kind == tarfile.REGTYPE else None)
    made = initramfs.from_image_files(buf.getvalue, tmp_path, "links")
    files = read_newc(gzip.decompress(made.read_bytes()))
    assert stat.S_ISLNK(files["bin/sh"][0]) and files["bin/sh"][1] == b"/bin/busybox"
    assert files["bin/busybox"][1] == b"\x7fELF" and ".dockerenv" not in files
    assert {"init", "dev/console", "proc", "sys", "tmp"} <= set(files)


def test_an_image_without_a_shell_cannot_become_a_guest(tmp_path):
    import io
    import tarfile
    from helpers.measure import initramfs
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("app")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    with pytest.raises(ValueError, match="no /bin/sh"):
        initramfs.from_image_files(buf.getvalue, tmp_path, "no-shell")
    assert list(tmp_path.iterdir()) == []
