"""--suppress: an accepted finding is shown apart and leaves the exit status alone; a mistyped code is a
usage error, not a silent no-op."""

from __future__ import annotations

import json

import pytest

from doctor import report
from doctor.diagnose import diagnose
from doctor.findings import Finding, exit_status
from doctor.suppress import Suppression, parse, split, unmatched
from hooks.identity import MODE_LABEL
from tests.doctor import healthy
from tests.doctor.healthy import CONFIG, HEADER, TOKEN
from tests.doctor.test_checks import BROKEN, _label
from tests.kubeflow_extension.test_cli import run


def both_namespaces_unlabelled() -> list[Finding]:
    broken = _label(TOKEN, MODE_LABEL, None)(_label(HEADER, MODE_LABEL, None)(healthy.snapshot()))
    return diagnose(broken, CONFIG)


def test_a_code_alone_suppresses_it_everywhere_and_the_exit_status_follows_what_is_left() -> None:
    findings = both_namespaces_unlabelled()
    assert {(f.code, f.object.name) for f in findings} == {("KFX304", HEADER), ("KFX304", TOKEN)}
    kept, suppressed = split(findings, [parse("KFX304")])
    assert (kept, len(suppressed), exit_status(kept)) == ([], 2, 0)


def test_a_code_and_object_suppress_that_finding_only() -> None:
    kept, suppressed = split(both_namespaces_unlabelled(), [parse(f"KFX304=Namespace {TOKEN}")])
    assert [f.object.name for f in kept] == [HEADER]
    assert [f.object.name for f in suppressed] == [TOKEN]
    assert exit_status(kept) == 1


def test_an_object_that_matched_nothing_is_named_a_code_alone_is_not() -> None:
    given = [parse("KFX304=Namespace nobody"), parse(f"KFX304=Namespace {TOKEN}"), parse("KFX205")]
    _, suppressed = split(both_namespaces_unlabelled(), given)
    assert unmatched(given, suppressed) == [Suppression("KFX304", "Namespace nobody")]


def test_a_suppression_of_another_code_changes_nothing() -> None:
    findings = diagnose(BROKEN["certificate expiring"][0](healthy.snapshot()), CONFIG)
    assert split(findings, [parse("KFX205")]) == (findings, [])


@pytest.mark.parametrize("text", ["KFX999", "kfx205", "KFX304=", ""])
def test_unknown_codes_and_empty_objects_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"KFX|nothing after"):
        parse(text)


def test_parse_reads_code_and_object() -> None:
    assert parse(" KFX307 = Namespace alice ") == Suppression("KFX307", "Namespace alice")


def test_reports_show_the_suppressed_apart() -> None:
    kept, suppressed = split(both_namespaces_unlabelled(), [parse(f"KFX304=Namespace {TOKEN}")])
    document = json.loads(report.as_json(kept, {}, suppressed))
    assert [f["object"]["name"] for f in document["suppressed"]] == [TOKEN]
    assert [f["object"]["name"] for f in document["findings"]] == [HEADER]
    text = report.as_text(kept, {}, suppressed)
    assert f"suppressed (--suppress): KFX304 Namespace {TOKEN}" in text


def test_the_command_line_refuses_a_mistyped_code_before_reading_anything() -> None:
    """With doctor's own usage status: its 2 means "warnings only"."""
    result = run("doctor", "--kubeconfig", "/nonexistent", "--suppress", "KFX2O5")
    assert result.returncode == 4
    assert "'KFX2O5' is not one of doctor's codes" in result.stderr
