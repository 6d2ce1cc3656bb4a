"""Abstention thresholds belong to one embedding model: a data dir's own calibration, else the
shipped one, else a lexical-only default that says so; another model's entry is never used."""

from __future__ import annotations

import json
from importlib import resources

from rag import calibration
from rag.types import Hit


def _hit(sentence: float, coverage: float) -> Hit:
    return Hit(1, 1.0, "t", 1, "c", None, None, None, coverage=coverage, sentence_cosine=sentence)


def test_an_unknown_model_gets_the_safe_default_and_says_so(tmp_path):
    found = calibration.load(tmp_path, "some/other-model|query: |passage: ")
    assert found.source == "default" and found.note and "calibrat" in found.note
    # term coverage alone decides: a close-sounding but unrelated cosine proves nothing
    assert found.abstain([_hit(0.99, 0.1)]) and not found.abstain([_hit(0.0, 0.5)])


def test_saved_thresholds_apply_to_their_model_only(tmp_path):
    calibration.save(tmp_path, "model-a||", 0.8, 0.4, "tune")
    calibration.save(tmp_path, "model-b||", 0.5, 0.3, "tune")
    a = calibration.load(tmp_path, "model-a||")
    assert (a.min_sentence, a.min_coverage, a.source, a.note) == (0.8, 0.4, "index", None)
    assert calibration.load(tmp_path, "model-b||").min_sentence == 0.5
    assert calibration.load(tmp_path, "model-c||").source == "default"
    assert (
        a.abstain([_hit(0.79, 0.39)])
        and not a.abstain([_hit(0.81, 0.0)])
        and not a.abstain([_hit(0.0, 0.41)])
    )
    assert a.abstain([])


def test_a_broken_calibration_file_falls_back_instead_of_failing(tmp_path):
    (tmp_path / calibration.FILE).write_text("{not json", encoding="utf-8")
    assert calibration.load(tmp_path, "model-a||").source in ("default", "shipped")


def test_shipped_calibrations_are_well_formed():
    table = json.loads(resources.files("rag").joinpath(calibration.FILE).read_text(encoding="utf-8"))
    assert table
    for identity, entry in table.items():
        assert identity.count("|") == 2
        assert 0.0 < entry["min_sentence"] <= 2.0 and 0.0 <= entry["min_coverage"] <= 1.01
        assert "tune" in entry["measured_on"]
