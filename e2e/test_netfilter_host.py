"""The host's netfilter state really goes back as found (``e2e.cluster.netfilter``): iptables chains and
rules in new and in existing tables, a native nft table, nfacct counters. Root; holds the node lock, so it
never runs beside a node."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from e2e.cluster import netfilter as nf
from e2e.cluster.host import host_lock

pytestmark = [pytest.mark.node]

LOCK_TIMEOUT = 240.0
"""Under pytest's 300 s: a node of another run that holds the lock longer fails the test, saying so."""
CHAIN = "KFEXT-E2E"
NATIVE = ("inet", "kfext_e2e")
# Rules for TEST-NET addresses (RFC 5737, RFC 3849), which no traffic here goes to.
V4_RULE = ["-d", "192.0.2.1/32", "-m", "comment", "--comment", "kfext e2e", "-j", "ACCEPT"]
V6_RULE = ["-d", "2001:db8::1/128", "-m", "comment", "--comment", "kfext e2e", "-j", "ACCEPT"]


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr.strip()}"
    return result.stdout


def saves() -> tuple[str, str]:
    """``iptables-save`` and ``ip6tables-save`` without their dated comments and chain counters."""
    return (
        nf.normalize_save(run("iptables-save")),
        nf.normalize_save(run("ip6tables-save")),
    )


def free_iptables_table(found: nf.Snapshot, family: str) -> str:
    """A table of iptables' own that ``found`` does not have."""
    free = [name for name in nf.IPTABLES_TABLES if (family, name) not in found.tables]
    assert free, f"every iptables table of {family} exists already"
    return free[0]


@dataclass
class Made:
    """What a test creates, removed at teardown whatever the code under test did."""

    tables: list[nf.TableKey] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)

    def remove(self) -> list[str]:
        left = []
        for family, name in self.tables:
            listed = subprocess.run(["nft", "list", "table", family, name], capture_output=True, check=False)
            if listed.returncode == 0:
                left.append(f"table {family} {name}")
                subprocess.run(["nft", "delete", "table", family, name], check=False)
        for name in self.counters:
            try:
                nf.delete_nfacct(name)
            except FileNotFoundError:
                continue
            left.append(f"nfacct counter {name}")
        return left


@pytest.fixture
def made() -> Iterator[Made]:
    """The node lock held; everything recorded in the yielded ``Made`` removed after the test."""
    missing = [
        f"{tool} (package {package})" for tool, package in nf.TOOL_PACKAGES.items() if not shutil.which(tool)
    ]
    if os.geteuid() != 0:
        missing.append("root (it changes the host's netfilter tables)")
    if missing:
        pytest.fail("the netfilter test needs: " + ", ".join(missing), pytrace=False)
    with host_lock(LOCK_TIMEOUT):
        things = Made()
        try:
            yield things
        finally:
            left = things.remove()
            if left:
                print("removed what restore() left:", ", ".join(left))


def test_new_tables_chains_rules_and_counters_are_removed(made: Made) -> None:
    """What the kubelet and kube-proxy leave: iptables chains and rules in tables that were not there, an
    nfacct counter."""
    before = saves()
    state = nf.NetfilterState.record()
    v4 = ("ip", free_iptables_table(state.snapshot, "ip"))
    v6 = ("ip6", free_iptables_table(state.snapshot, "ip6"))
    counter = "kfext_e2e_added"
    assert counter not in state.snapshot.counters
    made.tables += [v4, v6]
    made.counters.append(counter)
    run("iptables", "-t", v4[1], "-N", CHAIN)
    run("iptables", "-t", v4[1], "-A", CHAIN, *V4_RULE)
    run("iptables", "-t", v4[1], "-A", "OUTPUT", "-d", "192.0.2.1/32", "-j", CHAIN)
    run("ip6tables", "-t", v6[1], "-N", CHAIN)
    run("ip6tables", "-t", v6[1], "-A", CHAIN, *V6_RULE)
    nf.add_nfacct(counter)
    assert nf.differences(state.snapshot, nf.read_snapshot()) == [
        f"table ip {v4[1]} was added",
        f"table ip6 {v6[1]} was added",
        f"nfacct counter {counter} was added",
    ]

    assert state.restore() == []

    assert nf.differences(state.snapshot, nf.read_snapshot()) == []
    assert saves() == before


def test_changed_tables_and_counters_are_put_back(made: Made) -> None:
    """Tables that were there (an iptables one, a native one) get their content back; a deleted counter
    comes back, an added one goes."""
    outer = nf.NetfilterState.record()
    before = saves()
    v4 = ("ip", free_iptables_table(outer.snapshot, "ip"))
    kept, added = "kfext_e2e_kept", "kfext_e2e_added"
    made.tables += [v4, NATIVE]
    made.counters += [kept, added]
    run("iptables", "-t", v4[1], "-N", CHAIN)
    run("iptables", "-t", v4[1], "-A", CHAIN, *V4_RULE)
    run("nft", "add", "table", *NATIVE)
    run("nft", "add", "set", *NATIVE, "s", "{ type ipv4_addr; elements = { 192.0.2.1 }; }")
    run("nft", "add", "chain", *NATIVE, "c")
    run("nft", "add", "rule", *NATIVE, "c", "ip daddr @s counter drop")
    nf.add_nfacct(kept)
    found = saves()
    state = nf.NetfilterState.record()

    run("iptables", "-t", v4[1], "-I", CHAIN, "1", "-d", "192.0.2.2/32", "-j", "RETURN")
    run("iptables", "-t", v4[1], "-N", f"{CHAIN}-NEW")
    run("nft", "add", "element", *NATIVE, "s", "{ 192.0.2.9 }")
    run("nft", "add", "chain", *NATIVE, "extra")
    nf.delete_nfacct(kept)
    nf.add_nfacct(added)
    assert len(nf.differences(state.snapshot, nf.read_snapshot())) == 4

    assert state.restore() == []

    assert nf.differences(state.snapshot, nf.read_snapshot()) == []
    assert saves() == found
    assert outer.restore() == []
    assert nf.differences(outer.snapshot, nf.read_snapshot()) == []
    assert saves() == before
