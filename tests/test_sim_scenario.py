"""Scenarios: presets load, overrides apply, and bad input gets one clear message (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sim
from sim.cli.main import main
from sim.scenario.architecture import TransportKind
from sim.scenario.loader import ScenarioError, apply_overrides, load_scenario, parse_assignment
from sim.scenario.schema import Scenario

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
