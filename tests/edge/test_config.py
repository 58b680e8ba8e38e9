"""site.toml as an installer meets it: the shipped examples load, and mistakes are listed
all at once with the file, the table and the key, saying what to change."""

from __future__ import annotations

import copy
import stat
from pathlib import Path
from typing import Any

import pytest

from doorkeep.errors import ConfigError
from drivers.catalogue import BOARD_TYPES
from edge.config import (
    InputRef,
    RelayRef,
    SiteConfigError,
    default_site_dict,
    load_site_config,
    parse_site_config,
    render_site_toml,
    write_site_toml,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"

MINIMAL = """
[site]
id = "t"
timezone = "Europe/Berlin"
"""


def problems_of(text: str, tmp_path: Path, **kw: Any) -> list[str]:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(SiteConfigError) as info:
        load_site_config(path, **kw)
    assert isinstance(info.value, ConfigError)
    for p in info.value.problems:
        assert p.startswith(f"{path}: "), p
        assert p in str(info.value)
    return info.value.problems


def one_problem(text: str, tmp_path: Path, **kw: Any) -> str:
    problems = problems_of(text, tmp_path, **kw)
    assert len(problems) == 1, problems
    return problems[0]


HARDWARE = (
    MINIMAL
    + """
simulation = true
[[bus]]
id = "b1"
port = "sim"
[[board]]
id = "relays-a"
type = "waveshare-rtu-relay-8d"
bus = "b1"
address = 1
"""
)


def door(**keys: str) -> str:
    base = {"id": '"gate"', "relay": '"relays-a:1"', "methods": '["pin"]'}
    base.update(keys)
    return "[[door]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items())


# -- the shipped files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo-site.toml", "site.example.toml"])
def test_shipped_configs_load_cleanly_against_the_real_catalogue(name: str) -> None:
    cfg = load_site_config(CONFIG / name, board_types=BOARD_TYPES)
    assert cfg.site.tz.key == "Europe/Berlin"
    assert cfg.doors
    assert cfg.site.data_dir == CONFIG / "data"


def test_demo_site_has_the_promised_simulated_hardware() -> None:
    cfg = load_site_config(CONFIG / "demo-site.toml", board_types=BOARD_TYPES)
    assert cfg.site.simulation
    assert len(cfg.buses) == 2
    assert all(b.simulated for b in cfg.buses)
    assert {"gate", "lobby", "parcel", "gym", "plant"} <= {d.id for d in cfg.doors}
    assert cfg.door("gym").kind == "amenity"
    assert {r.direction for r in cfg.readers if r.door == "gate"} == {"in", "out"}
    lift = next(d for d in cfg.doors if d.kind == "lift")
    assert cfg.floors_of(lift.id)


def test_example_site_values_are_parsed_into_typed_sections() -> None:
    cfg = load_site_config(CONFIG / "site.example.toml")
    gate = cfg.door("gate")
    assert gate.relay == RelayRef("gatehouse", 1)
    assert gate.contact == InputRef("gatehouse", 1)
    assert str(gate.exit_button) == "gatehouse:in2"
    assert gate.fail_mode == "secure"
    assert cfg.door("lobby").fail_mode == "safe"
    assert cfg.web.host == "0.0.0.0"
    assert cfg.web.port == 8443
    assert cfg.mqtt is not None
    assert cfg.mqtt.homeassistant
    assert cfg.cloud is None
    assert cfg.board("parcel-room").host == "192.168.1.40"
    assert cfg.bus("rs485-1").baudrate == 9600


def test_defaults_fill_in_what_a_minimal_file_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(HARDWARE + door())
    cfg = load_site_config(path)
    gate = cfg.door("gate")
    assert (gate.pulse_ms, gate.held_open_s, gate.prealarm_s) == (3000, 60, 10)
    assert (gate.kind, gate.fail_mode, gate.anti_passback) == ("door", "secure", False)
    assert gate.name == "gate"
    assert cfg.site.name == "t"
    assert cfg.web.listen == "127.0.0.1:8080"
    assert cfg.mqtt is None


# -- every error at once ---------------------------------------------------------------------


def test_every_problem_is_listed_at_once_one_per_line(tmp_path: Path) -> None:
    text = """
[site]
id = "Bad Site"
timezone = "Mars/Olympus"
[web]
listen = "localhost"
[[door]]
id = "gate"
relay = "nowhere:1"
methods = ["pin", "telepathy"]
fail_mode = "open"
"""
    problems = problems_of(text, tmp_path)
    joined = "\n".join(problems)
    assert len(problems) == 6, joined
    assert "[site] key 'id'" in joined
    assert "[site] key 'timezone': 'Mars/Olympus' is not an IANA time zone" in joined
    assert "[web] key 'listen'" in joined
    assert "[[door]] \"gate\" key 'relay': board 'nowhere'" in joined
    assert "[[door]] \"gate\" key 'methods'" in joined
    assert "telepathy" in joined
    assert "[[door]] \"gate\" key 'fail_mode': must be one of secure, safe" in joined


def test_error_message_counts_and_lists_the_problems(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("[site]\nid = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_site_config(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 1 problem in the site configuration:"
    assert "[site] key 'timezone': is missing" in lines[1]


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="doorkeep init"):
        load_site_config(tmp_path / "nope.toml")


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    assert "line 3" in one_problem("[site]\nid = 't'\ntimezone = \n", tmp_path)


def test_unknown_keys_and_tables_are_errors_not_ignored(tmp_path: Path) -> None:
    problems = problems_of(HARDWARE + door(puls_ms="3000") + "[extra]\nx = 1\n", tmp_path)
    assert any("[[door]] \"gate\" key 'puls_ms': is not a known key" in p for p in problems)
    assert any("[extra]: is not a known table" in p for p in problems)


def test_wrong_type_names_the_type(tmp_path: Path) -> None:
    msg = one_problem(HARDWARE + door(pulse_ms='"3000"'), tmp_path)
    assert "key 'pulse_ms': must be an integer" in msg
    msg = one_problem(HARDWARE + door(anti_passback="1"), tmp_path)
    assert "key 'anti_passback': must be true or false" in msg


def test_ids_must_be_lowercase_and_unique_per_table(tmp_path: Path) -> None:
    problems = problems_of(HARDWARE + door(id='"Gate"') + door() + door(), tmp_path)
    assert any("[[door]] \"Gate\" key 'id'" in p for p in problems)
    assert any("ids must be unique" in p for p in problems)


def test_the_same_id_in_different_tables_is_fine(tmp_path: Path) -> None:
    text = HARDWARE + door() + '[[reader]]\nid = "gate"\ndoor = "gate"\ntype = "sim"\n'
    (tmp_path / "site.toml").write_text(text)
    assert load_site_config(tmp_path / "site.toml").reader("gate").door == "gate"


def test_simulated_bus_needs_simulation(tmp_path: Path) -> None:
    text = HARDWARE.replace("simulation = true", "simulation = false")
    msg = one_problem(text, tmp_path)
    assert '[[bus]] "b1" key \'port\': "sim" is a simulated bus' in msg
    assert "simulation = true" in msg


def test_simulated_reader_needs_simulation(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[[bus]]\nid = "b1"\nport = "/dev/ttyUSB0"\n'
        + '[[board]]\nid = "relays-a"\ntype = "x"\nbus = "b1"\naddress = 1\n'
        + door()
        + '[[reader]]\nid = "r"\ndoor = "gate"\ntype = "sim"\n'
    )
    assert "[[reader]] \"r\" key 'type'" in one_problem(text, tmp_path)


def test_two_buses_cannot_own_one_serial_port(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[[bus]]\nid = "a"\nport = "/dev/ttyUSB0"\n[[bus]]\nid = "b"\nport = "/dev/ttyUSB0"\n'
    )
    assert 'already used by [[bus]] "a"' in one_problem(text, tmp_path)


def test_board_type_is_checked_against_the_catalogue(tmp_path: Path) -> None:
    msg = one_problem(
        HARDWARE.replace("waveshare-rtu-relay-8d", "waveshare-relay-9"),
        tmp_path,
        board_types=BOARD_TYPES,
    )
    assert "key 'type': 'waveshare-relay-9' is not a known board type" in msg
    assert "waveshare-rtu-relay-8d" in msg


def test_board_type_names_alone_are_accepted_as_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(HARDWARE + door(relay='"relays-a:99"'))
    assert load_site_config(path, board_types={"waveshare-rtu-relay-8d"}).doors


def test_relay_channel_out_of_range_for_the_board(tmp_path: Path) -> None:
    msg = one_problem(HARDWARE + door(relay='"relays-a:9"'), tmp_path, board_types=BOARD_TYPES)
    assert "key 'relay': channel 9 is out of range" in msg
    assert "1..8" in msg
    msg = one_problem(
        HARDWARE + door(relay='"relays-a:9"'), tmp_path, board_types={"waveshare-rtu-relay-8d": 8}
    )
    assert "1..8" in msg


def test_relay_channels_count_from_one(tmp_path: Path) -> None:
    assert "1 or more" in one_problem(HARDWARE + door(relay='"relays-a:0"'), tmp_path)
    assert '"board:channel"' in one_problem(HARDWARE + door(relay='"relays-a"'), tmp_path)


def test_contact_on_a_board_without_inputs_is_refused(tmp_path: Path) -> None:
    text = HARDWARE.replace("relay-8d", "relay-8") + door(contact='"relays-a:in1"')
    msg = one_problem(text, tmp_path, board_types=BOARD_TYPES)
    assert "key 'contact': board 'relays-a' (waveshare-rtu-relay-8) has no inputs" in msg


def test_input_references_are_checked(tmp_path: Path) -> None:
    problems = problems_of(
        HARDWARE + door(contact='"relays-a:1"', exit_button='"relays-a:in9"'),
        tmp_path,
        board_types=BOARD_TYPES,
    )
    assert any("key 'contact': must be \"board:inN\"" in p for p in problems)
    assert any("key 'exit_button': input 9 is out of range" in p for p in problems)


def test_one_relay_cannot_drive_two_things(tmp_path: Path) -> None:
    text = (
        HARDWARE + door() + '[[output]]\nid = "light"\nrelay = "relays-a:1"\nfunction = "light"\n'
    )
    msg = one_problem(text, tmp_path)
    assert '[[output]] "light" key \'relay\': relays-a:1 is already used by [[door]] "gate"' in msg


def test_board_on_a_bus_needs_an_existing_bus_and_a_unique_address(tmp_path: Path) -> None:
    text = (
        HARDWARE
        + '[[board]]\nid = "b"\ntype = "waveshare-rtu-relay-8"\nbus = "b1"\naddress = 1\n'
        + '[[board]]\nid = "c"\ntype = "waveshare-rtu-relay-8"\nbus = "b9"\naddress = 300\n'
        + '[[board]]\nid = "d"\ntype = "waveshare-rtu-relay-8"\nbus = "b1"\n'
    )
    problems = problems_of(text, tmp_path)
    joined = "\n".join(problems)
    assert "[[board]] \"b\" key 'address': 1 on bus 'b1' is already used" in joined
    assert "[[board]] \"c\" key 'bus': 'b9' is not any [[bus]] id" in joined
    assert "[[board]] \"c\" key 'address': must be between 1 and 247" in joined
    assert "[[board]] \"d\" key 'address': is missing" in joined
    assert len(problems) == 4


def test_board_attachment_follows_its_transport(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[[board]]\nid = "net"\ntype = "modbus-tcp-relay-8"\n'
        + '[[board]]\nid = "rtu"\ntype = "waveshare-rtu-relay-8"\n'
        + '[[board]]\nid = "pi"\ntype = "gpio"\nhost = "10.0.0.1"\n'
    )
    joined = "\n".join(problems_of(text, tmp_path, board_types=BOARD_TYPES))
    assert "[[board]] \"net\" key 'host': is missing" in joined
    assert "[[board]] \"rtu\" key 'bus': is missing" in joined
    assert "[[board]] \"pi\" key 'host': a gpio board has none" in joined


def test_reader_must_feed_an_existing_door(tmp_path: Path) -> None:
    text = HARDWARE + door() + '[[reader]]\nid = "r"\ndoor = "gaet"\ntype = "sim"\n'
    msg = one_problem(text, tmp_path)
    assert "[[reader]] \"r\" key 'door': 'gaet' is not any [[door]] id; use one of gate" in msg


def test_reader_direction_and_type(tmp_path: Path) -> None:
    text = (
        HARDWARE + door() + '[[reader]]\nid = "r"\ndoor = "gate"\ntype = "usb"\ndirection = "up"\n'
    )
    joined = "\n".join(problems_of(text, tmp_path))
    assert "key 'type': must be one of sim, osdp, serial, mqtt, http" in joined
    assert "key 'direction': must be one of in, out" in joined


def test_lift_door_needs_building(tmp_path: Path) -> None:
    msg = one_problem(HARDWARE + door(kind='"lift"'), tmp_path)
    assert "key 'building': is missing; a kind = \"lift\" door needs its building" in msg


def test_anti_passback_needs_in_and_out_readers(tmp_path: Path) -> None:
    text = (
        HARDWARE
        + door(anti_passback="true")
        + '[[reader]]\nid = "r"\ndoor = "gate"\ntype = "sim"\n'
    )
    assert "key 'anti_passback': needs an in reader and an out reader" in one_problem(
        text, tmp_path
    )


def test_prealarm_must_come_before_the_held_open_alarm(tmp_path: Path) -> None:
    msg = one_problem(HARDWARE + door(held_open_s="10", prealarm_s="10"), tmp_path)
    assert "key 'prealarm_s': (10) must be shorter than held_open_s (10)" in msg


def test_floor_outputs(tmp_path: Path) -> None:
    text = (
        HARDWARE
        + door()
        + '[[output]]\nid = "f1"\nrelay = "relays-a:2"\nfunction = "floor"\n'
        + 'floor = "G5"\ndoor = "gate"\n'
        + '[[output]]\nid = "f2"\nrelay = "relays-a:3"\nfunction = "floor"\n'
    )
    joined = "\n".join(problems_of(text, tmp_path))
    assert "[[output]] \"f1\" key 'floor': must be a floor from -10 to 128" in joined
    assert "[[output]] \"f1\" key 'door': 'gate' is not a kind = \"lift\" door" in joined
    assert "[[output]] \"f2\" key 'floor': is missing" in joined
    assert "[[output]] \"f2\" key 'building': is missing" in joined


def test_mqtt_and_cloud_urls(tmp_path: Path) -> None:
    text = MINIMAL + '[mqtt]\nurl = "http://x"\ntopic_prefix = "a/#"\n[cloud]\nurl = "ftp://c"\n'
    joined = "\n".join(problems_of(text, tmp_path))
    assert "[mqtt] key 'url': must be a URL like \"mqtt://host:port\"" in joined
    assert "[mqtt] key 'topic_prefix'" in joined
    assert "[cloud] key 'url': must be a URL like \"https://host:port\"" in joined


def test_cloud_keeps_enrolment_keys_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL + '[cloud]\nurl = "https://cloud.example"\nsite_key = "abc"\n')
    cfg = load_site_config(path)
    assert cfg.cloud is not None
    assert cfg.cloud.extra == {"site_key": "abc"}


def test_listen_accepts_ipv6_brackets(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL + '[web]\nlisten = "[::1]:9000"\n')
    web = load_site_config(path).web
    assert (web.host, web.port) == ("::1", 9000)


# -- writing ---------------------------------------------------------------------------------


def test_rendered_example_parses_back_to_the_same_config(tmp_path: Path) -> None:
    cfg = load_site_config(CONFIG / "site.example.toml")
    text = render_site_toml(dict(cfg.raw))
    again = parse_site_config(text, CONFIG / "site.example.toml")
    assert again == cfg
    assert "[[door]]" in text
    assert text.startswith("[site]\n")


def test_render_escapes_strings() -> None:
    d = {"site": {"id": "t", "timezone": "UTC", "name": 'He said "hi"\\ \n\x7f ü'}}
    cfg = parse_site_config(render_site_toml(d), "/x/site.toml")
    assert cfg.site.name == 'He said "hi"\\ \n\x7f ü'


def test_write_validates_first_and_leaves_the_file_alone_on_error(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL)
    bad = {"site": {"id": "t", "timezone": "Nowhere/Town"}}
    with pytest.raises(SiteConfigError, match="timezone"):
        write_site_toml(path, bad)
    assert path.read_text() == MINIMAL
    assert not (tmp_path / "site.toml.bak").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["site.toml"]


def test_write_keeps_a_backup_and_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL)
    path.chmod(0o600)
    cfg = load_site_config(path)
    edited = copy.deepcopy(dict(cfg.raw))
    edited["site"]["name"] = "Renamed"
    new = write_site_toml(path, edited)
    assert new.site.name == "Renamed"
    assert load_site_config(path).site.name == "Renamed"
    assert (tmp_path / "site.toml.bak").read_text() == MINIMAL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.toml", "site.toml.bak"]


def test_write_creates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "site.toml"
    write_site_toml(path, default_site_dict("fresh", "America/New_York", simulation=False))
    cfg = load_site_config(path)
    assert cfg.site.id == "fresh"
    assert cfg.web.tls
    assert not (path.parent / "site.toml.bak").exists()


def test_default_simulated_site_opens_a_door_out_of_the_box(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    write_site_toml(path, default_site_dict("demo-2", "Europe/Berlin", simulation=True))
    cfg = load_site_config(path, board_types=BOARD_TYPES)
    assert cfg.site.simulation
    assert cfg.web.listen == "127.0.0.1:8080"
    assert [d.id for d in cfg.doors] == ["gate"]
    assert cfg.reader("gate-in").door == "gate"


def test_default_site_dict_refuses_a_bad_id_when_written(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match=r"\[site\] key 'id'"):
        write_site_toml(tmp_path / "s.toml", default_site_dict("My Site", "UTC", simulation=False))


# -- serial readers (edge/config/serialreaders.py) ------------------------------------------


def serial_reader(options: str) -> str:
    return HARDWARE + door() + f'[[reader]]\nid = "r"\ndoor = "gate"\ntype = "serial"\n{options}'


def test_a_serial_reader_needs_its_port(tmp_path: Path) -> None:
    msg = one_problem(serial_reader(""), tmp_path)
    assert "[[reader]] \"r\" key 'options.port': is missing" in msg


def test_serial_reader_options_are_checked_each_with_what_to_use(tmp_path: Path) -> None:
    options = (
        'options = { port = "/dev/ttyUSB3", baudrate = 9601, format = "em4100",'
        ' digits = "oct", repeat_ms = -1, parity = "E" }\n'
    )
    joined = "\n".join(problems_of(serial_reader(options), tmp_path))
    assert "'options.baudrate': must be one of 1200" in joined
    assert "'options.format': must be one of rdm6300, wiegand-text" in joined
    assert "'options.digits': must be one of hex, decimal" in joined
    assert "'options.repeat_ms': must be a whole number of milliseconds" in joined
    assert "'options.parity': is not a serial reader option; known: port" in joined


def test_a_serial_reader_with_its_options_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(serial_reader('options = { port = "/dev/ttyUSB3", format = "wiegand-text" }\n'))
    (reader,) = load_site_config(path).readers
    assert reader.options == {"port": "/dev/ttyUSB3", "format": "wiegand-text"}
