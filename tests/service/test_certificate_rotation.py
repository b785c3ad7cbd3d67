"""The renewal decisions over a CA's whole life, by moving the clock rather than waiting."""

from __future__ import annotations

import datetime

from service import certificates
from service.certificate_rotation import Contents, plan

NAMES = ("webhook.kubeflow-extension.svc", "webhook.kubeflow-extension")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
RETIRE_AFTER = datetime.timedelta(hours=3)


def fresh() -> Contents:
    contents = plan(None, NAMES, START, published=b"", retire_after=RETIRE_AFTER)
    assert contents is not None
    return contents


def test_empty_secret_gets_a_ca_and_a_serving_pair_it_signed() -> None:
    contents = fresh()
    assert contents.bundle == contents.ca.cert
    assert certificates.signed_by(contents.serving.cert, contents.ca.cert)
    assert certificates.covers(contents.serving.cert, NAMES)
    assert certificates.remaining(contents.serving.cert, START) > 300 * DAY


def test_good_contents_are_left_alone() -> None:
    contents = fresh()
    assert (
        plan(contents, NAMES, START + 100 * DAY, published=contents.bundle, retire_after=RETIRE_AFTER) is None
    )
    assert Contents.from_data(contents.to_data()) == contents


def test_serving_certificate_is_renewed_a_month_before_expiry_by_the_same_ca() -> None:
    contents = fresh()
    later = START + 340 * DAY
    renewed = plan(contents, NAMES, later, published=contents.bundle, retire_after=RETIRE_AFTER)
    assert renewed is not None
    assert renewed.ca == contents.ca and renewed.bundle == contents.bundle
    assert renewed.serving != contents.serving
    assert certificates.remaining(renewed.serving.cert, later) > 300 * DAY


def test_new_service_names_get_a_new_serving_certificate() -> None:
    contents = fresh()
    renewed = plan(
        contents, (*NAMES, "other.svc"), START, published=contents.bundle, retire_after=RETIRE_AFTER
    )
    assert renewed is not None
    assert certificates.covers(renewed.serving.cert, ("other.svc",))


def test_ca_rollover_publishes_then_serves_then_retires_the_old_ca_once_every_replica_serves() -> None:
    old = fresh()
    # Keep the serving pair fresh so that only the CA's age matters.
    late = START + 3300 * DAY
    old = Contents(old.ca, old.bundle, certificates.issue(old.ca, NAMES[0], late, 60 * DAY, dns_names=NAMES))
    step1 = plan(old, NAMES, late, published=old.bundle, retire_after=RETIRE_AFTER)
    assert step1 is not None
    assert step1.ca != old.ca
    assert step1.bundle == step1.ca.cert + old.ca.cert
    assert step1.serving == old.serving  # still signed by the old CA, which the bundle keeps
    assert (
        plan(step1, NAMES, late, published=old.bundle, retire_after=RETIRE_AFTER) is None
    )  # not trusted yet
    step2 = plan(step1, NAMES, late, published=step1.bundle, retire_after=RETIRE_AFTER)
    assert step2 is not None
    assert certificates.signed_by(step2.serving.cert, step2.ca.cert)
    assert step2.bundle == step1.bundle
    # Other replicas still serve the old pair until their next round: the old CA stays trusted.
    almost = late + RETIRE_AFTER - datetime.timedelta(minutes=1)
    assert plan(step2, NAMES, almost, published=step2.bundle, retire_after=RETIRE_AFTER) is None
    retired = late + RETIRE_AFTER
    step3 = plan(step2, NAMES, retired, published=step2.bundle, retire_after=RETIRE_AFTER)
    assert step3 is not None
    assert step3.bundle == step3.ca.cert and step3.serving == step2.serving
    assert plan(step3, NAMES, retired, published=step3.bundle, retire_after=RETIRE_AFTER) is None


def test_a_lost_secret_is_rebuilt_still_trusting_the_published_ca_until_the_new_pair_is_served() -> None:
    lost = fresh()
    later = START + 10 * DAY
    rebuilt = plan(None, NAMES, later, published=lost.bundle, retire_after=RETIRE_AFTER)
    assert rebuilt is not None
    assert rebuilt.ca != lost.ca and certificates.signed_by(rebuilt.serving.cert, rebuilt.ca.cert)
    assert rebuilt.bundle == rebuilt.ca.cert + lost.ca.cert  # replicas serving the lost pair stay trusted
    assert plan(rebuilt, NAMES, later, published=rebuilt.bundle, retire_after=RETIRE_AFTER) is None
    retired = plan(rebuilt, NAMES, later + RETIRE_AFTER, published=rebuilt.bundle, retire_after=RETIRE_AFTER)
    assert retired is not None and retired.bundle == rebuilt.ca.cert


def test_only_unexpired_certificates_of_the_published_bundle_are_kept() -> None:
    expired = plan(None, NAMES, START - 4000 * DAY, published=b"", retire_after=RETIRE_AFTER)
    assert expired is not None
    for published in (expired.bundle, b"not a certificate", b""):
        rebuilt = plan(None, NAMES, START, published=published, retire_after=RETIRE_AFTER)
        assert rebuilt is not None and rebuilt.bundle == rebuilt.ca.cert


def test_expired_or_damaged_contents_are_rebuilt() -> None:
    contents = fresh()
    rebuilt = plan(contents, NAMES, START + 4000 * DAY, published=contents.bundle, retire_after=RETIRE_AFTER)
    assert rebuilt is not None
    assert rebuilt.ca != contents.ca
    damaged = {**contents.to_data(), "ca.crt": b"not a certificate"}
    assert Contents.from_data({k: v for k, v in damaged.items() if k != "tls.key"}) is None
    rebuilt = plan(
        Contents.from_data(damaged), NAMES, START, published=contents.bundle, retire_after=RETIRE_AFTER
    )
    assert rebuilt is not None
    assert certificates.signed_by(rebuilt.serving.cert, rebuilt.ca.cert)
