"""e2e.cluster.netfilter's pure parts: nfnetlink messages, snapshots read from nft and iptables-save, their
differences and the plan that puts one back. No root needed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2e.cluster import netfilter as nf
from e2e.cluster.netfilter import Command, Snapshot, Table


def test_constants_are_the_kernels() -> None:
    """linux/netfilter/nfnetlink_acct.h: DEL comes after GET_CTRZERO, which reads and zeroes a counter."""
    assert (nf.NFNL_MSG_ACCT_NEW, nf.NFNL_MSG_ACCT_GET, nf.NFNL_MSG_ACCT_DEL) == (0, 1, 3)
    assert (nf.NFNL_SUBSYS_ACCT, nf.NFACCT_NAME, nf.NETLINK_NETFILTER) == (7, 1, 12)


def test_attribute_is_padded_to_four_bytes_with_its_unpadded_length() -> None:
    assert nf.attribute(1, b"ab\0") == b"\x07\x00\x01\x00ab\0\0"
    assert nf.attribute(2, b"abcd") == b"\x08\x00\x02\x00abcd"


def test_delete_request_bytes() -> None:
    data = nf.nfacct_request(nf.NFNL_MSG_ACCT_DEL, 7, "abc")
    header = struct.pack("=IHHII", 28, 7 << 8 | 3, nf.NLM_F_REQUEST | nf.NLM_F_ACK, 7, 0)
    assert data == header + b"\0\0\0\0" + b"\x08\x00\x01\x00abc\0"


def test_dump_and_new_requests_flags() -> None:
    dump = nf.parse_messages(nf.nfacct_request(nf.NFNL_MSG_ACCT_GET, 1))[0]
    assert dump.type == 7 << 8 | 1 and dump.flags == nf.NLM_F_REQUEST | nf.NLM_F_DUMP
    assert dump.payload == b"\0\0\0\0"
    new = nf.parse_messages(nf.nfacct_request(nf.NFNL_MSG_ACCT_NEW, 2, "x"))[0]
    assert new.flags == nf.NLM_F_REQUEST | nf.NLM_F_ACK | nf.NLM_F_CREATE | nf.NLM_F_EXCL


@pytest.mark.parametrize("name", ["", "a\0b", "x" * nf.NFACCT_NAME_MAX])
def test_names_the_kernel_refuses_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an nfacct counter name"):
        nf.counter_name_attribute(name)


def _answer(msg_type: int, flags: int, seq: int, payload: bytes) -> bytes:
    length = nf.NLMSG_HEADER.size + len(payload)
    return nf.NLMSG_HEADER.pack(length, msg_type, flags, seq, 1234) + payload + b"\0" * (-length % 4)


def test_a_dump_answer_is_read_back_to_names_counts_skipped() -> None:
    """As the kernel answers a dump: NEW messages (name, packets, bytes, use) flagged MULTI, then DONE."""

    def counter(name: str) -> bytes:
        attributes = nf.counter_name_attribute(name)
        attributes += nf.attribute(2 | 0x4000, (5).to_bytes(8, "big"))  # NFACCT_PKTS, network byte order
        attributes += nf.attribute(4, (1).to_bytes(4, "big"))  # NFACCT_USE
        return _answer(7 << 8, nf.NLM_F_MULTI, 3, b"\0\0\0\0" + attributes)

    data = counter("ct_state_invalid_dropped_pkts") + counter("b") + _answer(3, nf.NLM_F_MULTI, 3, b"\0" * 4)
    messages = nf.parse_messages(data)
    assert [m.type for m in messages] == [7 << 8, 7 << 8, nf.NLMSG_DONE]
    assert [nf.counter_name(m) for m in messages[:2]] == ["ct_state_invalid_dropped_pkts", "b"]
    assert nf.parse_attributes(messages[1].payload[4:])[2] == (5).to_bytes(8, "big")
    assert nf.error_code(messages[2]) == 0


def test_errors_and_acks_carry_a_positive_errno() -> None:
    request = nf.nfacct_request(nf.NFNL_MSG_ACCT_DEL, 9, "gone")
    error = nf.parse_messages(_answer(nf.NLMSG_ERROR, 0, 9, struct.pack("=i", -2) + request[:16]))[0]
    ack = nf.parse_messages(_answer(nf.NLMSG_ERROR, 0x100, 9, struct.pack("=i", 0) + request[:16]))[0]
    assert (nf.error_code(error), nf.error_code(ack)) == (2, 0)


def test_truncated_messages_are_refused() -> None:
    data = nf.nfacct_request(nf.NFNL_MSG_ACCT_DEL, 1, "abc")
    with pytest.raises(ValueError, match="truncated netlink message"):
        nf.parse_messages(data[:-4])
    with pytest.raises(ValueError, match="truncated netlink attribute"):
        nf.parse_attributes(b"\x10\x00\x01\x00ab")


@given(
    st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), min_size=1, max_size=nf.NFACCT_NAME_MAX - 1),
    st.integers(0, 2**32 - 1),
)
def test_a_request_reads_back_as_sent(name: str, seq: int) -> None:
    (message,) = nf.parse_messages(nf.nfacct_request(nf.NFNL_MSG_ACCT_NEW, seq, name))
    assert message.seq == seq and nf.counter_name(message) == name


RULESET = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "filter", "handle": 1}},
        {"table": {"family": "ip6", "name": "filter", "handle": 2}},
        {"table": {"family": "inet", "name": "own", "handle": 3}},
        {"table": {"family": "bridge", "name": "filter", "handle": 4}},
        {"chain": {"family": "ip", "table": "filter", "name": "KUBE-FIREWALL", "handle": 1}},
        {
            "rule": {
                "family": "ip",
                "table": "filter",
                "chain": "KUBE-FIREWALL",
                "expr": [{"xt": {"type": "match", "name": "comment"}}, {"drop": None}],
            }
        },
        {"rule": {"family": "inet", "table": "own", "chain": "c", "expr": [{"accept": None}]}},
    ]
}


def test_ruleset_tables_of_the_families_with_their_iptables_extensions() -> None:
    assert nf.ruleset_tables(RULESET) == {
        ("ip", "filter"): True,
        ("ip6", "filter"): False,
        ("inet", "own"): False,
    }
    assert nf.ruleset_tables({}) == {}


def test_iptables_tables_are_its_names_in_ip_and_ip6() -> None:
    assert nf.is_iptables_table("ip", "nat") and nf.is_iptables_table("ip6", "filter")
    assert not nf.is_iptables_table("inet", "filter") and not nf.is_iptables_table("ip", "kube-proxy")


SAVED = """# Generated by iptables-save v1.8.9 (nf_tables) on Mon Dec  7 09:54:14 2026
*filter
:INPUT ACCEPT [1204:99120]
:OUTPUT DROP [7:420]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "drop [1:2] martians" -j DROP
COMMIT
# Completed on Mon Dec  7 09:54:14 2026
"""


def test_saved_text_loses_its_dates_and_chain_counters_only() -> None:
    assert nf.normalize_save(SAVED) == (
        "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n:KUBE-FIREWALL - [0:0]\n"
        "-A INPUT -j KUBE-FIREWALL\n"
        '-A KUBE-FIREWALL -m comment --comment "drop [1:2] martians" -j DROP\nCOMMIT\n'
    )
    assert nf.normalize_save("") == ""


def test_a_save_is_reloadable_when_it_holds_the_table() -> None:
    assert nf.reloadable_save(nf.normalize_save(SAVED), "filter")
    assert not nf.reloadable_save(nf.normalize_save(SAVED), "nat")
    assert not nf.reloadable_save("# Table `filter' is incompatible, use 'nft' tool.\n", "filter")


FILTER = Table("ip", "filter", "iptables", nf.normalize_save(SAVED))
OWN = Table("inet", "own", "nft", "table inet own {\n\tchain c {\n\t\taccept\n\t}\n}\n")


def _snapshot(*tables: Table, counters: tuple[str, ...] = ()) -> Snapshot:
    return Snapshot({t.key: t for t in tables}, frozenset(counters))


def test_no_differences_between_equal_snapshots() -> None:
    assert (
        nf.differences(_snapshot(FILTER, OWN, counters=("a",)), _snapshot(OWN, FILTER, counters=("a",))) == []
    )
    assert nf.differences(Snapshot(), Snapshot()) == []


def test_differences_name_each_table_and_counter() -> None:
    changed = Table("inet", "own", "nft", OWN.text.replace("accept", "drop"))
    added = Table("ip6", "filter", "iptables", "*filter\nCOMMIT\n")
    before = _snapshot(FILTER, OWN, counters=("kept", "gone"))
    after = _snapshot(changed, added, counters=("kept", "localhost_nps_accepted_pkts"))
    assert nf.differences(before, after) == [
        "table inet own changed: -\t\taccept; +\t\tdrop",
        "table ip filter is gone",
        "table ip6 filter was added",
        "nfacct counter gone is gone",
        "nfacct counter localhost_nps_accepted_pkts was added",
    ]


def test_a_long_change_is_cut_short() -> None:
    many = Table("inet", "own", "nft", "".join(f"rule {i}\n" for i in range(20)))
    (line,) = nf.differences(_snapshot(OWN), _snapshot(many))
    assert line.endswith("; ... (13 more)") and line.count("; ") == 12


def test_a_table_read_another_way_differs() -> None:
    other = Table("ip", "filter", "nft", FILTER.text)
    assert nf.differences(_snapshot(FILTER), _snapshot(other)) == [
        "table ip filter changed: read with iptables before, with nft now"
    ]


def test_nothing_to_do_when_nothing_changed() -> None:
    plan = nf.restore_plan(_snapshot(FILTER, OWN, counters=("a",)), _snapshot(FILTER, OWN, counters=("a",)))
    assert plan == nf.Plan(commands=[], delete_counters=[], add_counters=[], problems=[])


def test_added_tables_and_counters_are_deleted() -> None:
    """The kubelet's and kube-proxy's leftovers on a host that had no tables."""
    kubelet = [Table(family, name, "iptables", "") for family in ("ip", "ip6") for name in ("mangle", "nat")]
    now = _snapshot(*kubelet, counters=("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"))
    plan = nf.restore_plan(Snapshot(), now)
    assert plan.commands == [
        Command(("nft", "delete", "table", "ip", "mangle")),
        Command(("nft", "delete", "table", "ip", "nat")),
        Command(("nft", "delete", "table", "ip6", "mangle")),
        Command(("nft", "delete", "table", "ip6", "nat")),
    ]
    assert plan.delete_counters == ["ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"]
    assert plan.add_counters == [] and plan.problems == []


def test_changed_and_deleted_tables_are_reloaded_deleted_counters_added() -> None:
    v6 = Table("ip6", "filter", "iptables", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    changed = Table("ip", "filter", "iptables", FILTER.text.replace("-j DROP", "-j ACCEPT"))
    plan = nf.restore_plan(_snapshot(FILTER, OWN, v6, counters=("kept",)), _snapshot(changed, v6))
    assert plan.commands == [
        Command(("nft", "-f", "-"), f"table inet own\ndelete table inet own\n{OWN.text}"),
        Command(("iptables-restore",), FILTER.text),
    ]
    assert plan.add_counters == ["kept"] and plan.delete_counters == []


def test_reload_commands_per_tool() -> None:
    v6 = Table("ip6", "nat", "iptables", "*nat\nCOMMIT\n")
    assert nf.reload_command(v6) == Command(("ip6tables-restore",), "*nat\nCOMMIT\n")
    assert nf.reload_command(FILTER).argv == ("iptables-restore",)


def test_a_changed_table_nft_cannot_list_whole_is_reported_not_reloaded() -> None:
    lossy = Table("inet", "own", "nft", OWN.text, xt=True)
    plan = nf.restore_plan(_snapshot(lossy), Snapshot())
    assert plan.commands == []
    assert plan.problems == [
        "table inet own changed and cannot be put back: nft's listing of it leaves out iptables extensions"
    ]
