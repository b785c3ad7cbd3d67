"""The renewal decisions over a CA's whole life, by moving the clock rather than waiting."""

from __future__ import annotations

import datetime

from service import certificates
from service.certificate_rotation import Contents, plan

NAMES = ("webhook.kubeflow-extension.svc", "webhook.kubeflow-extension")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def fresh() -> Contents:
    contents = plan(None, NAMES, START, bundle_published=False)
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
    assert plan(contents, NAMES, START + 100 * DAY, bundle_published=True) is None
    assert Contents.from_data(contents.to_data()) == contents


def test_serving_certificate_is_renewed_a_month_before_expiry_by_the_same_ca() -> None:
    contents = fresh()
    later = START + 340 * DAY
    renewed = plan(contents, NAMES, later, bundle_published=True)
    assert renewed is not None
    assert renewed.ca == contents.ca and renewed.bundle == contents.bundle
    assert renewed.serving != contents.serving
    assert certificates.remaining(renewed.serving.cert, later) > 300 * DAY


def test_new_service_names_get_a_new_serving_certificate() -> None:
    renewed = plan(fresh(), (*NAMES, "other.svc"), START, bundle_published=True)
    assert renewed is not None
    assert certificates.covers(renewed.serving.cert, ("other.svc",))


def test_ca_rollover_publishes_before_it_serves_then_retires_the_old_ca() -> None:
    old = fresh()
    # Keep the serving pair fresh so that only the CA's age matters.
    late = START + 3300 * DAY
    old = Contents(old.ca, old.bundle, certificates.issue(old.ca, NAMES[0], late, 60 * DAY, dns_names=NAMES))
    step1 = plan(old, NAMES, late, bundle_published=True)
    assert step1 is not None
    assert step1.ca != old.ca
    assert step1.bundle == step1.ca.cert + old.ca.cert
    assert step1.serving == old.serving  # still signed by the old CA, which the bundle keeps
    assert plan(step1, NAMES, late, bundle_published=False) is None  # not yet trusted: wait
    step2 = plan(step1, NAMES, late, bundle_published=True)
    assert step2 is not None
    assert certificates.signed_by(step2.serving.cert, step2.ca.cert)
    assert step2.bundle == step1.bundle
    step3 = plan(step2, NAMES, late, bundle_published=True)
    assert step3 is not None
    assert step3.bundle == step3.ca.cert
    assert plan(step3, NAMES, late, bundle_published=True) is None


def test_expired_or_damaged_contents_are_rebuilt() -> None:
    contents = fresh()
    rebuilt = plan(contents, NAMES, START + 4000 * DAY, bundle_published=True)
    assert rebuilt is not None
    assert rebuilt.ca != contents.ca
    damaged = {**contents.to_data(), "ca.crt": b"not a certificate"}
    assert Contents.from_data({k: v for k, v in damaged.items() if k != "tls.key"}) is None
    rebuilt = plan(Contents.from_data(damaged), NAMES, START, bundle_published=True)
    assert rebuilt is not None
    assert certificates.signed_by(rebuilt.serving.cert, rebuilt.ca.cert)
