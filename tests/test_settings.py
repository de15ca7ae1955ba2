"""Every DOCKERCOURSE_* setting is parsed one way (fast tier: no engine)."""
import pytest

from helpers.course import settings


@pytest.mark.parametrize("raw,expected", [("1", True), ("yes", True), ("TRUE", True),
                                          ("on", True), ("0", False), ("no", False),
                                          ("false", False), ("off", False), ("", False)])
def test_offline_reads_yes_and_no_alike(monkeypatch, raw, expected):
    monkeypatch.setenv("DOCKERCOURSE_OFFLINE", raw)
    assert settings.offline() is expected


def test_offline_refuses_what_it_cannot_read(monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="DOCKERCOURSE_OFFLINE"):
        settings.offline()


def test_unset_means_pull(monkeypatch):
    monkeypatch.delenv("DOCKERCOURSE_OFFLINE", raising=False)
    assert settings.offline() is False


def test_paths_and_numbers(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKERCOURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("DOCKERCOURSE_BUNDLE", str(tmp_path / "b.tar"))
    monkeypatch.setenv("DOCKERCOURSE_FENCE_SECONDS", "7.5")
    assert settings.cache_dir() == tmp_path
    assert settings.bundle_path() == tmp_path / "b.tar"
    assert settings.fence_seconds() == 7.5
    monkeypatch.setenv("DOCKERCOURSE_FENCE_SECONDS", "soon")
    with pytest.raises(ValueError, match="seconds"):
        settings.fence_seconds()
    monkeypatch.delenv("DOCKERCOURSE_FENCE_SECONDS")
    assert settings.fence_seconds() == 120


def test_every_setting_is_in_the_readme():
    import re
    readme = (settings.ROOT / "README.md").read_text()
    names = set(re.findall(r"DOCKERCOURSE_[A-Z_]+", (settings.ROOT / "helpers" / "course" /
                                                     "settings.py").read_text()))
    assert names and all(name in readme for name in names), names - set(
        re.findall(r"DOCKERCOURSE_[A-Z_]+", readme))
