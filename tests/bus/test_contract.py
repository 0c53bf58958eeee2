"""Topic registry, codec and envelope: the contract's parse/validate path, including fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.asyncapi import DEFAULT_PATH, render
from bus.codec import parse_incoming
from bus.envelope import pack_frame, unpack_frame
from bus.schema import FrameHeader, RuleSet
from bus.topics import CAMERA, DECISION, RULES, STATUS, TOPICS, match_topic
from core.errors import MessageError

P = "ruledrive/v1"


def test_asyncapi_is_generated_from_the_models() -> None:
    stale = "docs/asyncapi.yaml is stale: run python -m bus.asyncapi"
    assert DEFAULT_PATH.read_text() == render(), stale


def test_registry_round_trip() -> None:
    for t in TOPICS:
        ids = {"vehicle_id": "car-1", "node_id": "n1"}
        concrete = t.topic(P, **ids)
        entry, got = match_topic(concrete, P)
        assert entry is t and set(got.values()) <= set(ids.values())
    assert CAMERA.subscription(P) == f"{P}/vehicles/+/camera/front"
    assert RULES.retain and STATUS.retain and not DECISION.retain


def test_envelope_round_trip() -> None:
    h = FrameHeader(vehicle_id="v", frame_id=1, stamp_ns=5, speed_kph=3.5)
    assert unpack_frame(pack_frame(h, b"\xff\xd8jpeg")) == (h, b"\xff\xd8jpeg")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stamp_ns", True),
        ("stamp_ns", "1700000000000000000"),
        ("frame_id", False),
        ("frame_id", "7"),
        ("speed_kph", "40"),
        ("speed_kph", True),
    ],
)
def test_a_number_sent_as_a_boolean_or_a_string_is_refused(field: str, value: object) -> None:
    import json
    import struct

    fields = {"vehicle_id": "car-1", "frame_id": 3, "stamp_ns": 1_700_000_000 * 10**9}
    head = json.dumps({**fields, "speed_kph": 40.0, field: value}).encode()
    frame = b"RDF1" + struct.pack(">I", len(head)) + head + b"\xff\xd8"
    with pytest.raises(MessageError) as err:
        parse_incoming(CAMERA.topic(P, vehicle_id="car-1"), frame, P)
    assert err.value.code == "bad_header" and field in err.value.detail
    rules = {"vehicle_id": "car-1", "version": "1", "issued_at_ns": value, "rules": ["x"]}
    if field == "stamp_ns":
        with pytest.raises(MessageError) as err:
            parse_incoming(RULES.topic(P, vehicle_id="car-1"), json.dumps(rules).encode(), P)
        assert err.value.code == "bad_schema" and "issued_at_ns" in err.value.detail


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b'{"vehicle_id": "car-1", "jpeg": "/9j/4AAQ"}', "JSON (the JPEG is never base64"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a bare JPEG without the envelope"),
        (b"RDF2\x00\x00\x00\x02{}", "envelope version b'RDF2'"),
        (b"RDF", "payload of 3 bytes is too short"),
        (b"hello world", "magic b'hell'"),
    ],
)
def test_a_payload_that_is_not_an_envelope_is_told_the_layout(payload: bytes, says: str) -> None:
    with pytest.raises(MessageError) as err:
        parse_incoming(CAMERA.topic(P, vehicle_id="car-1"), payload, P)
    assert err.value.code == "bad_envelope"
    assert says in err.value.detail and "4-byte big-endian header length" in err.value.detail


def test_parse_incoming_checks_ids_and_size() -> None:
    r = RuleSet(vehicle_id="a", version="1", issued_at_ns=1, rules=["x"])
    msg = parse_incoming(RULES.topic(P, vehicle_id="a"), r.model_dump_json().encode(), P)
    assert msg.message == r
    with pytest.raises(MessageError) as exc:
        parse_incoming(RULES.topic(P, vehicle_id="b"), r.model_dump_json().encode(), P)
    assert exc.value.code == "id_mismatch"
    with pytest.raises(MessageError) as exc:
        parse_incoming(RULES.topic(P, vehicle_id="a"), b"x" * 2000, P, max_payload_bytes=1024)
    assert exc.value.code == "payload_too_large"
    assert parse_incoming(RULES.topic(P, vehicle_id="a"), b"", P).message is None  # cleared
    # A final newline is not part of an id (a regex's `$` matches before one).
    for topic in (RULES.topic(P, vehicle_id="a\n"), RULES.topic(P, vehicle_id="a") + "\n"):
        with pytest.raises(MessageError) as exc:
            parse_incoming(topic, r.model_dump_json().encode(), P)
        assert exc.value.code in {"bad_vehicle_id", "unknown_topic"}


_topics = st.one_of(
    st.sampled_from([CAMERA.topic(P, vehicle_id="car-1"), RULES.topic(P, vehicle_id="car-1")]),
    st.text(max_size=60),
    st.builds(lambda v: f"{P}/vehicles/{v}/rules", st.text(max_size=70)),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=_topics, payload=st.binary(max_size=300))
def test_fuzz_parse_raw_bytes(topic: str, payload: bytes) -> None:
    try:
        parse_incoming(topic, payload, P, max_payload_bytes=200)
    except MessageError as exc:
        assert exc.code and isinstance(exc.detail, str)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "vehicle_id",
                "frame_id",
                "stamp_ns",
                "speed_kph",
                "encoding",
                "extra",
            ]
        ),
        _json_values,
        max_size=7,
    ),
    rules=st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "vehicle_id",
                "version",
                "issued_at_ns",
                "expires_at_ns",
                "rules",
                "signature_b64",
                "key_id",
            ]
        ),
        _json_values,
        max_size=8,
    ),
)
def test_fuzz_structured_payloads(fields: dict, rules: dict) -> None:
    import json
    import struct

    head = json.dumps(fields).encode()
    frame = b"RDF1" + struct.pack(">I", len(head)) + head + b"\xff\xd8"
    for topic, payload in (
        (CAMERA.topic(P, vehicle_id="car-1"), frame),
        (RULES.topic(P, vehicle_id="car-1"), json.dumps(rules).encode()),
    ):
        try:
            msg = parse_incoming(topic, payload, P)
        except MessageError as exc:
            assert exc.code in {
                "bad_header",
                "bad_json",
                "bad_schema",
                "bad_envelope",
                "unsupported_schema_version",
                "bad_vehicle_id",
                "id_mismatch",
            }
        else:
            assert msg.message.vehicle_id == "car-1"


def test_contract_reject_table_is_generated_from_the_code() -> None:
    from pathlib import Path

    from core.rejects import reject_table_markdown

    text = (Path(__file__).parents[2] / "docs" / "contract.md").read_text()
    start = "<!-- generated: core.rejects.RejectCode -->\n"
    assert start in text, "docs/contract.md lost the generated reject table's markers"
    block = text.split(start, 1)[1].split("\n<!-- end generated -->", 1)[0]
    assert block == reject_table_markdown(), (
        "regenerate the reject table: python -m ruledrive.docgen\n" + reject_table_markdown()
    )


def test_every_reject_code_has_a_meaning_and_no_literal_is_left() -> None:
    import re
    from pathlib import Path

    from core.rejects import REJECT_MEANINGS, RejectCode

    assert set(REJECT_MEANINGS) == set(RejectCode)
    root = Path(__file__).parents[2]
    quoted = re.compile(r"[\"'](" + "|".join(c.value for c in RejectCode) + r")[\"']")
    for pkg in ("bus", "policy", "perception", "replay", "core"):
        for path in (root / pkg).glob("*.py"):
            if path.name in ("rejects.py", "fallback.py"):  # fallback.Reason shares names
                continue
            hits = quoted.findall(path.read_text())
            assert not hits, f"{path}: reject code literal(s) {hits}; use core.rejects.RejectCode"


def test_a_key_given_twice_is_refused_not_read_as_its_last_value() -> None:
    """Parsers disagree on duplicate keys (last wins here, first elsewhere): a rule set with a
    second "rules", or any key twice at any depth, is bad_json."""
    good = RuleSet(vehicle_id="a", version="1", issued_at_ns=1, rules=["Stop"]).model_dump_json()
    assert parse_incoming(RULES.topic(P, vehicle_id="a"), good.encode(), P).message is not None
    for payload in (
        good[:-1] + ',"rules":[]}',
        '{"rules":["No overtaking"],' + good[1:],
        good[:-1] + ',"version":"1"}',
    ):
        with pytest.raises(MessageError, match="appears twice") as exc:
            parse_incoming(RULES.topic(P, vehicle_id="a"), payload.encode(), P)
        assert exc.value.code == "bad_json"


def _envelope(header: bytes) -> bytes:
    return b"RDF1" + len(header).to_bytes(4, "big") + header + b"\xff\xd8jpeg"


def test_a_frame_header_is_held_to_the_same_json_rules_as_every_message() -> None:
    good = b'{"vehicle_id":"a","frame_id":5,"stamp_ns":1,"speed_kph":10}'
    assert unpack_frame(_envelope(good))[0].frame_id == 5
    with pytest.raises(MessageError, match="'frame_id' appears twice") as exc:
        unpack_frame(_envelope(good[:-1] + b',"frame_id":6}'))
    assert exc.value.code == "bad_json"
    with pytest.raises(MessageError, match="speed_kph: Input should be a finite number"):
        unpack_frame(_envelope(good.replace(b":10}", b":NaN}")))
    too_long = b"RDF1" + (4097).to_bytes(4, "big") + b" " * 5000
    with pytest.raises(MessageError, match="4097 is over the limit of 4096"):
        unpack_frame(too_long)


@pytest.mark.parametrize(
    "version",
    [
        "r1\n[INFO] forged line",
        "r1\x1b[31m",
        "\x00",
        "r1\x85forged",  # NEL, a C1 control: a newline to some log viewers
        "\x9b31mRED",  # CSI, the 8-bit escape
        "r1\u2028forged",  # Unicode line separator
        "r1\u202egnp.exe",  # right-to-left override: a log shows the text reversed
        "r1\u2066x\u2069",  # bidirectional isolates
        "r1\u061c",  # Arabic letter mark, a bidirectional control too
    ],
)
def test_a_rule_set_version_with_control_characters_is_refused(version: str) -> None:
    # The version is echoed in every decision and in logs.
    with pytest.raises(ValueError, match="should match pattern"):
        RuleSet(vehicle_id="a", version=version, issued_at_ns=1, rules=["Stop"])
    RuleSet(vehicle_id="a", version="规则-2026.12", issued_at_ns=1, rules=["Stop"])
    RuleSet(vehicle_id="a", version="révision-2 ü", issued_at_ns=1, rules=["Stop"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("schema_version", "true"), ("schema_version", "1.0"), ("issued_at_ns", "1.7e18")],
)
def test_integers_are_integers_not_booleans_or_floats(field: str, value: str) -> None:
    good = RuleSet(vehicle_id="a", version="1", issued_at_ns=1, rules=["Stop"]).model_dump_json()
    payload = good.replace(f'"{field}":1', f'"{field}":{value}', 1)
    assert payload != good
    with pytest.raises(MessageError):
        parse_incoming(RULES.topic(P, vehicle_id="a"), payload.encode(), P)


@pytest.mark.parametrize("stamp", ["1.7e18", "true", "1700000000000000000.0"])
def test_a_frame_stamp_must_be_an_integer(stamp: str) -> None:
    head = f'{{"vehicle_id":"car-1","frame_id":1,"stamp_ns":{stamp},"speed_kph":10}}'.encode()
    payload = b"RDF1" + len(head).to_bytes(4, "big") + head + b"\xff\xd8"
    with pytest.raises(MessageError) as exc:
        parse_incoming(CAMERA.topic(P, vehicle_id="car-1"), payload, P)
    assert exc.value.code == "bad_header"


def test_topic_patterns_are_compiled_once_not_per_message() -> None:
    # match_topic runs for every message; building its patterns each time cost ~6x (measured
    # 5.6 against 0.94 us per match), which a decorator moved off _regex once went unnoticed.
    from bus.topics import CAMERA, DEFAULT_PREFIX, _regex, match_topic

    topic = f"{DEFAULT_PREFIX}/{CAMERA.pattern.replace('{vehicle_id}', 'car-1')}"
    match_topic(topic)
    before = _regex.cache_info().hits  # type: ignore[attr-defined]
    match_topic(topic)
    assert _regex.cache_info().hits > before  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("prefix", "said"),
    [
        (b"\xef\xbb\xbf", "UTF-8 byte-order mark"),
        (b"\xff\xfe", "UTF-16 byte-order mark"),
        (b"\xff\xfe\x00\x00", "UTF-32 byte-order mark"),
    ],
)
def test_json_a_parser_reads_wrong_says_why(prefix: bytes, said: str) -> None:
    """A byte-order mark before the JSON (some Windows tools write one) or a payload of NUL
    bytes: the parser's own words ("expected value at line 1 column 1") do not say what is
    wrong, so the report names it, for rule sets and frame headers alike."""
    good = RuleSet(vehicle_id="a", version="1", issued_at_ns=1, rules=["Stop"]).model_dump_json()
    with pytest.raises(MessageError, match=said) as exc:
        parse_incoming(RULES.topic(P, vehicle_id="a"), prefix + good.encode(), P)
    assert exc.value.code == "bad_json"
    head = b'{"vehicle_id":"a","frame_id":5,"stamp_ns":1,"speed_kph":10}'
    with pytest.raises(MessageError, match=said) as exc:
        unpack_frame(_envelope(prefix + head))
    assert exc.value.code == "bad_json"
    with pytest.raises(MessageError, match="the payload is 8 NUL bytes") as exc:
        parse_incoming(RULES.topic(P, vehicle_id="a"), b"\x00" * 8, P)
    assert exc.value.code == "bad_json"
    with pytest.raises(MessageError, match="Invalid JSON") as exc:  # no hint to give
        parse_incoming(RULES.topic(P, vehicle_id="a"), b"not json", P)
    assert "byte-order" not in str(exc.value) and "NUL" not in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("probabilities", {"STOP": float("nan")}),  # scored as a valid answer by a replay once
        ("probabilities", {"STOP": float("inf")}),
        ("probabilities", {"STOP": 1.5}),
        ("reason", "[/red]"),  # crashed the replay's table (rich markup)
        ("reason", "x" * 20_000_000),
        ("model_version", "m" * 5_000_000),
        ("model_version", "\x1b[2J\x1b[31mPASS"),  # cleared the operator's terminal
        ("rules_version", "r1\x85x"),
        ("node_id", "node 1"),
    ],
)
def test_a_decision_carries_only_what_its_consumers_can_print_and_score(
    field: str, value: object
) -> None:
    """A decision is what vehicles and replays read: NaN scores, markup, control characters
    and megabyte strings are refused by the contract's own model (a rogue node's decisions are
    then 'undecodable' at the replay, not scored or printed)."""
    from bus.schema import DecisionMsg, Timings

    good = DecisionMsg(
        vehicle_id="car-1",
        frame_id=1,
        frame_stamp_ns=1,
        stamp_ns=2,
        decision="STOP",
        probabilities={"STOP": 0.9, "PROCEED": 0.1},
        confidence=0.9,
        valid=True,
        rules_version="r1",
        model_version="fused-2026[rc1]",  # brackets are fine: printed as text
        node_id="node-1",
        timings=Timings(
            frame_age_ms=1, queue_ms=0, decode_ms=1, inference_ms=1, total_ms=2, batch_size=1
        ),
    )
    data = {**good.model_dump(), field: value}
    with pytest.raises(ValueError):
        DecisionMsg.model_validate(data)
