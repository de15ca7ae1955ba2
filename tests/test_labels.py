"""The course's label, and clean-up that removes exactly what carries it."""
import io
import uuid

from helpers.course.labels import LABEL, clean_up, clean_up_all, labels


def test_labels_shape():
    assert labels(3) == {LABEL: "03"}
    assert labels("7", role="web") == {LABEL: "07", "role": "web"}


def _labelled_set(client, kit, nn, tag):
    lab = labels(nn)
    c = client.containers.create(kit["busybox"], ["true"], labels=lab, name=f"t-{tag}-c")
    n = client.networks.create(f"t-{tag}-net", labels=lab)
    v = client.volumes.create(f"t-{tag}-vol", labels=lab)
    dockerfile = f"FROM {kit['busybox']}\nRUN echo {tag} > /made-by-test\n".encode()
    img, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"t-{tag}-img:1",
                                 labels=lab, rm=True)
    return c, n, v, img


def test_clean_up_removes_exactly_the_labelled(client, kit):
    tag = uuid.uuid4().hex[:6]
    learners = client.containers.create(kit["busybox"], ["true"], name=f"learner-{tag}")
    learners_vol = client.volumes.create(f"learner-{tag}")
    try:
        _labelled_set(client, kit, 1, f"a{tag}")
        _labelled_set(client, kit, 2, f"b{tag}")
        report = clean_up(1, client)
        assert sorted(report.containers) == [f"t-a{tag}-c"]
        assert report.networks == [f"t-a{tag}-net"] and report.volumes == [f"t-a{tag}-vol"]
        assert report.images == [f"t-a{tag}-img:1"]
        names = [c.name for c in client.containers.list(all=True)]
        assert f"t-b{tag}-c" in names and f"learner-{tag}" in names
        report = clean_up_all(client)
        assert f"t-b{tag}-c" in report.containers and f"t-b{tag}-vol" in report.volumes
        assert f"t-b{tag}-net" in report.networks and f"t-b{tag}-img:1" in report.images
        names = [c.name for c in client.containers.list(all=True)]
        assert f"learner-{tag}" in names and f"t-b{tag}-c" not in names
        assert client.volumes.get(f"learner-{tag}")
        # The kit images never carry the notebook label, so they stay.
        for ref in kit.values():
            assert client.images.get(ref)
    finally:
        learners.remove(force=True)
        learners_vol.remove()
