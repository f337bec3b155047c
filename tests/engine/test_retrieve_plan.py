"""What a resumed retrieve asks for, when the node cannot answer the drill-down queries."""

from __future__ import annotations

import pytest
from factory import write_series
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gearview.config import Node, load_config
from gearview.errors import NetworkError
from gearview.net import resume

NODE = Node("PACS", "PACS", "127.0.0.1", 1)


def _series(uid: str, count: int) -> Dataset:
    ds = Dataset()
    ds.SeriesInstanceUID = uid
    ds.NumberOfSeriesRelatedInstances = count
    return ds


@pytest.fixture
def partial(cache, tmp_path):
    study, a, b = generate_uid(), generate_uid(), generate_uid()
    for path in write_series(tmp_path / "a", 2, study_uid=study, series_uid=a):
        cache.add_file(path)
    write_series(tmp_path / "b", 1, study_uid=study, series_uid=b)
    return study, a, b


def test_nothing_local_asks_for_the_whole_study(cache, home):
    plan = resume.plan_retrieve(NODE, load_config(home), cache, generate_uid())
    assert plan.parts is None


def test_a_failed_series_query_asks_for_everything(cache, home, partial, monkeypatch):
    def down(*_a, **_k):
        raise NetworkError("PACS did not answer")

    monkeypatch.setattr(resume, "find_series", down)
    plan = resume.plan_retrieve(NODE, load_config(home), cache, partial[0])
    assert plan.parts is None and "did not answer" in plan.notes[0]


def test_partial_series_without_image_query_is_asked_for_whole(cache, home, partial, monkeypatch):
    study, a, b = partial
    monkeypatch.setattr(resume, "find_series", lambda *_a, **_k: [_series(a, 3), _series(b, 1)])

    def no_image_level(*_a, **_k):
        raise NetworkError("IMAGE level not supported")

    monkeypatch.setattr(resume, "find_images", no_image_level)
    plan = resume.plan_retrieve(NODE, load_config(home), cache, study)
    assert plan.parts == [resume.Part(a, expected=3), resume.Part(b, expected=1)]


def test_complete_series_are_skipped(cache, home, partial, monkeypatch):
    study, a, b = partial
    monkeypatch.setattr(resume, "find_series", lambda *_a, **_k: [_series(a, 2), _series(b, 1)])
    plan = resume.plan_retrieve(NODE, load_config(home), cache, study)
    assert plan.parts == [resume.Part(b, expected=1)] and plan.already_local == 2
