"""Scenarios: presets load, overrides apply, and bad input gets one clear message (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sim
from sim.cli.main import main
from sim.scenario.architecture import TransportKind
from sim.scenario.broker import BrokerKind, KafkaAcks, KafkaConfig, SqsFifoConfig
from sim.scenario.loader import (
    ScenarioError,
    apply_overrides,
    load_scenario,
    parse_assignment,
    with_overrides,
)
from sim.scenario.schema import Scenario
from sim.scenario.store import SingleStoreConfig, StoreKind

FOUNDATION = (
    "http_polling_monolith",
    "long_polling_monolith",
    "websocket_monolith",
    "websocket_microservices",
)


@pytest.mark.parametrize("name", FOUNDATION)
def test_every_foundation_preset_loads_with_a_description(name: str) -> None:
    sc = sim.load_scenario(name)
    assert sc.name == name
    assert len(sc.description) > 60
    assert sc.workload.users >= 20_000


def test_the_foundation_presets_share_one_workload_so_they_compare_fairly() -> None:
    workloads = {sim.load_scenario(n).workload for n in FOUNDATION}
    assert len(workloads) == 1


def test_presets_are_listed_with_their_descriptions() -> None:
    names = {p.name for p in sim.list_presets()}
    assert set(FOUNDATION) <= names
    assert all(p.description for p in sim.list_presets())


def test_dotted_overrides_change_only_the_named_fields() -> None:
    base = load_scenario("websocket_microservices")
    sc = load_scenario(
        "websocket_microservices",
        {"architecture.gateway.instances": 8, "workload.users": 1000},
    )
    assert sc.architecture.gateway.instances == 8
    assert sc.workload.users == 1000
    assert sc.architecture.service == base.architecture.service


def test_cli_assignments_are_read_as_yaml_values() -> None:
    assert parse_assignment("workload.users=5000") == ("workload.users", 5000)
    assert parse_assignment("architecture.transport.kind=long_polling")[1] == "long_polling"
    _, value = parse_assignment("network.client_rtt_s={dist: exponential, mean: 0.05}")
    assert value == {"dist": "exponential", "mean": 0.05}


def test_overrides_do_not_modify_the_mapping_they_start_from() -> None:
    raw = {"workload": {"users": 10}}
    apply_overrides(raw, {"workload.users": 20})
    assert raw == {"workload": {"users": 10}}


def test_a_bare_number_is_a_constant_distribution() -> None:
    sc = load_scenario({}, {"architecture.network.internal_rtt_s": 0.002})
    assert sc.architecture.network.internal_rtt_s.mean == 0.002


def test_the_json_schema_names_the_sections_and_the_allowed_transports() -> None:
    schema = sim.scenario.schema.json_schema()
    assert {"architecture", "workload", "faults", "run"} <= set(schema["properties"])
    text = json.dumps(schema)
    for kind in TransportKind:
        assert kind.value in text


def test_scenarios_are_immutable() -> None:
    sc = Scenario()
    with pytest.raises(Exception, match="frozen"):
        sc.workload.users = 3  # type: ignore[misc]


# --------------------------------------------------------------------- bad input


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_an_unknown_preset_names_the_nearest_ones(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(capsys, ["run", "websocket_mono"])
    assert "unknown preset 'websocket_mono'" in message
    assert "websocket_monolith" in message


@pytest.mark.parametrize("value", ["-3", "many"])
def test_a_script_count_that_is_not_a_whole_number_is_refused(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error: usage, then the message
        main(["validate", "--scripts", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert "--scripts" in message and "whole number >= 0" in message and value in message


def test_a_misspelled_field_is_named_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys, ["run", "websocket_monolith", "--set", "architecture.gatway.workers=4"]
    )
    assert "architecture.gatway" in message and "did you mean 'architecture.gateway'" in message


def test_a_misspelled_field_in_a_yaml_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("architecture:\n  transport: {kind: websocket, poll_intervall_s: 3}\n")
    message = _cli_error(capsys, ["run", str(path)])
    assert "architecture.transport.poll_intervall_s" in message
    assert "poll_interval_s" in message


def test_a_negative_rate_names_the_field_the_value_and_the_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = _cli_error(
        capsys, ["run", "websocket_monolith", "--set", "workload.messages_per_user_per_hour=-3"]
    )
    assert "workload.messages_per_user_per_hour" in message
    assert "-3" in message and "greater than or equal to 0" in message


def test_a_wrong_type_names_the_field_and_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(capsys, ["run", "websocket_monolith", "--set", "workload.users=many"])
    assert "workload.users" in message and "'many'" in message and "integer" in message


def test_an_unknown_choice_lists_the_allowed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys, ["run", "websocket_monolith", "--set", "architecture.transport.kind=pigeon"]
    )
    assert "'pigeon'" in message
    assert "websocket" in message and "long_polling" in message and "short_polling" in message


def test_an_unknown_distribution_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys,
        ["run", "websocket_monolith", "--set", "workload.payload_bytes={dist: lognorm, mean: 5}"],
    )
    assert "workload.payload_bytes" in message and "lognormal" in message


def test_a_warmup_longer_than_the_run_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(capsys, ["run", "websocket_monolith", "--set", "run.warmup_s=999"])
    assert "run.warmup_s" in message and "run.duration_s" in message


def test_invalid_yaml_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("architecture: [unclosed\n")
    message = _cli_error(capsys, ["run", str(path)])
    assert "not valid YAML" in message


def test_a_bad_scenario_raises_scenario_error_in_python() -> None:
    with pytest.raises(ScenarioError, match=r"architecture\.gateway\.instances"):
        load_scenario({"architecture": {"gateway": {"instances": 0}}})


def test_a_bad_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare"])
    assert info.value.code == 2


def test_a_fault_on_a_target_that_does_not_exist_names_it_and_what_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = _cli_error(
        capsys,
        [
            "run",
            "websocket_monolith",
            "--set",
            "faults=[{at_s: 10, kind: crash, target: gateway.7, duration_s: 5}]",
        ],
    )
    assert "faults.0.target" in message and "gateway.7" in message and "instances 0.." in message


@pytest.mark.parametrize(
    ("settings", "fault", "named"),
    [
        (
            ["architecture.service.service_time_s={dist: constant, value: 0}"],
            "{at_s: 10, kind: crash, target: service.0, duration_s: 5}",
            "architecture.service.service_time_s",
        ),
        (
            [
                "architecture.store.write_s={dist: constant, value: 0}",
                "architecture.store.read_s={dist: constant, value: 0}",
            ],
            "{at_s: 10, kind: slow, target: store, duration_s: 5}",
            "architecture.store.write_s and read_s",
        ),
        (
            [
                "architecture.gateway.service_time_s={dist: constant, value: 0}",
                "architecture.gateway.push_time_s={dist: constant, value: 0}",
            ],
            "{at_s: 10, kind: pause, target: gateway.1, duration_s: 5}",
            "architecture.gateway.service_time_s and push_time_s",
        ),
    ],
)
def test_a_fault_on_an_instantaneous_tier_is_refused_not_ignored(
    capsys: pytest.CaptureFixture[str], settings: list[str], fault: str, named: str
) -> None:
    """A tier with a constant-0 time skips its stations: a crash, slow-down or pause of
    it would silently change nothing, so the scenario is refused and says why."""
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    command = ["run", "websocket_microservices", *overrides, "--set", f"faults=[{fault}]"]
    message = _cli_error(capsys, command)
    assert "faults.0.target" in message and "instantaneous" in message and named in message


def test_an_instantaneous_gateway_can_still_crash() -> None:
    """Its crash closes the connections, so it is allowed."""
    scenario = load_scenario(
        "websocket_microservices",
        {
            "architecture.gateway.service_time_s": {"dist": "constant", "value": 0},
            "architecture.gateway.push_time_s": {"dist": "constant", "value": 0},
            "faults": [{"at_s": 10, "kind": "crash", "target": "gateway.0", "duration_s": 5}],
        },
    )
    assert scenario.faults[0].target == "gateway.0"


def test_a_monolith_gateway_with_service_work_can_be_paused() -> None:
    """A monolith's gateway instances also do the service's work: with a service cost
    they are not instantaneous even when the gateway's own times are 0."""
    zero = {"dist": "constant", "value": 0}
    scenario = load_scenario(
        "websocket_monolith",
        {
            "architecture.gateway.service_time_s": zero,
            "architecture.gateway.push_time_s": zero,
            "architecture.service.service_time_s": {"dist": "constant", "value": 0.001},
            "faults": [{"at_s": 10, "kind": "pause", "target": "gateway.0", "duration_s": 5}],
        },
    )
    assert scenario.faults[0].kind.value == "pause"


def test_a_broker_fault_without_a_broker_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys,
        [
            "run",
            "websocket_monolith",
            "--set",
            "faults=[{at_s: 10, kind: crash, target: broker.0, duration_s: 5}]",
        ],
    )
    assert "faults.0.target" in message and "no broker" in message


def test_ack_after_broker_needs_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys, ["run", "websocket_monolith", "--set", "architecture.ack_after=broker"]
    )
    assert "ack_after" in message and "broker.kind" in message


# ---------------------------------------------------------- brokers and stores by kind


def test_a_kafka_field_on_a_rabbitmq_broker_is_refused_in_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each broker kind has only its own fields: a YAML file giving another kind's is
    refused with one line naming the field, the kind it was given to and its owner."""
    path = tmp_path / "mine.yaml"
    path.write_text("architecture:\n  broker: {kind: rabbitmq, acks: all}\n")
    message = _cli_error(capsys, ["run", str(path)])
    assert "architecture.broker.acks" in message
    assert "kind rabbitmq" in message and "kind kafka" in message
    assert "prefetch" in message  # what a rabbitmq broker does have


def test_a_cassandra_field_on_a_dynamodb_store_is_refused_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("architecture:\n  store: {kind: dynamodb, write_consistency: all}\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert "architecture.store.write_consistency" in message
    assert "kind dynamodb" in message and "kind cassandra" in message


def test_a_field_of_another_kind_is_refused_from_a_set_override(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = _cli_error(
        capsys,
        ["run", "websocket_rabbitmq_mongodb", "--set", "architecture.broker.acks=all"],
    )
    assert "architecture.broker.acks" in message and "kind rabbitmq" in message
    with pytest.raises(ScenarioError, match=r"store\.replication_factor.*kind dynamodb"):
        load_scenario("websocket_sqs_dynamodb", {"architecture.store.replication_factor": 3})


def test_a_misspelled_broker_field_is_named_with_a_suggestion() -> None:
    with pytest.raises(ScenarioError, match=r"did you mean 'architecture\.broker\.acks'"):
        load_scenario("websocket_kafka_cassandra", {"architecture.broker.akcs": "all"})


def test_an_unknown_broker_kind_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    message = _cli_error(
        capsys, ["run", "websocket_monolith", "--set", "architecture.broker.kind=pigeon"]
    )
    assert "architecture.broker.kind" in message and "'pigeon'" in message
    assert "kafka, rabbitmq, sqs, sqs_fifo" in message


def test_an_override_that_switches_kind_drops_the_old_kinds_fields() -> None:
    """Switching kind keeps the fields both kinds have and drops the old kind's own
    (from the YAML or from a loaded scenario); what the overrides set themselves is
    validated against the new kind."""
    sc = load_scenario("websocket_rabbitmq_mongodb", {"architecture.broker.kind": "kafka"})
    broker = sc.architecture.broker
    assert isinstance(broker, KafkaConfig) and broker.nodes == 3 and broker.partitions == 12
    assert "prefetch" not in broker.model_dump()
    switched = with_overrides(sc, {"architecture.broker.kind": "sqs_fifo"})
    assert isinstance(switched.architecture.broker, SqsFifoConfig)
    back = with_overrides(switched, {"architecture.store.kind": "single"})
    assert back.architecture.store.kind is StoreKind.SINGLE
    sc = load_scenario(
        "websocket_rabbitmq_mongodb",
        {"architecture.broker.kind": "kafka", "architecture.broker.acks": 1},
    )
    assert isinstance(sc.architecture.broker, KafkaConfig)
    assert sc.architecture.broker.acks is KafkaAcks.LEADER
    for overrides in (
        {"architecture.broker.kind": "kafka", "architecture.broker.prefetch": 10},
        {"architecture.broker.prefetch": 10, "architecture.broker.kind": "kafka"},
    ):
        with pytest.raises(ScenarioError, match=r"broker\.prefetch.*kind kafka"):
            load_scenario("websocket_rabbitmq_mongodb", overrides)


def test_a_section_without_kind_has_the_default_kind() -> None:
    sc = load_scenario({"architecture": {"store": {"workers": 3}}})
    assert isinstance(sc.architecture.store, SingleStoreConfig)
    assert sc.architecture.store.workers == 3
    assert sc.architecture.broker.kind is BrokerKind.NONE
    with pytest.raises(ScenarioError, match=r"broker\.prefetch.*kind none"):
        load_scenario({"architecture": {"broker": {"prefetch": 3}}})


def test_the_json_schema_tells_broker_and_store_kinds_apart_by_kind() -> None:
    defs = sim.scenario.schema.json_schema()["$defs"]
    for section, kinds in (("broker", BrokerKind), ("store", StoreKind)):
        prop = defs["Architecture"]["properties"][section]
        assert prop["discriminator"]["propertyName"] == "kind"
        mapping = prop["discriminator"]["mapping"]
        assert set(mapping) == {kind.value for kind in kinds}
        assert len(prop["oneOf"]) == len(kinds)
        for kind, ref in mapping.items():
            member = defs[ref.rsplit("/", 1)[1]]
            assert member["properties"]["kind"]["const"] == kind
            assert member["additionalProperties"] is False
    kafka = defs[
        defs["Architecture"]["properties"]["broker"]["discriminator"]["mapping"]["kafka"].rsplit(
            "/", 1
        )[1]
    ]
    assert "acks" in kafka["properties"] and "prefetch" not in kafka["properties"]
