"""The room's figures and their /metrics text, on fake connections and a task.Clock."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.rooms import Lab

from labproto.chat import figures, wire
from labproto.chat.metrics import exposition, room_registry


def scraped(lab: Lab) -> dict[str, float]:
    """The room's samples as /metrics shows them, read back with prometheus_client's parser:
    ``{'labchat_logins_total{transport="tcp"}': 2.0, ...}``."""
    text = exposition(room_registry(lab.room)).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("labchat_"):
                labels = ",".join(f'{key}="{value}"' for key, value in sample.labels.items())
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def disconnects(lab: Lab) -> dict[str, float]:
    return {
        reason: scraped(lab)[f'labchat_disconnects_total{{reason="{reason}"}}']
        for reason in figures.DISCONNECT_REASONS
    }


@pytest.fixture
def lab() -> Lab:
    return Lab(max_users=3, burst=2, rate=0.01, login_timeout=60.0)


def test_a_new_room_shows_every_figure_at_zero(lab: Lab) -> None:
    assert scraped(lab) == {
        'labchat_users_online{transport="tcp"}': 0,
        'labchat_users_online{transport="websocket"}': 0,
        'labchat_logins_total{transport="tcp"}': 0,
        'labchat_logins_total{transport="websocket"}': 0,
        "labchat_lines_relayed_total": 0,
        "labchat_deliveries_total": 0,
        'labchat_disconnects_total{reason="quit"}': 0,
        'labchat_disconnects_total{reason="connection_lost"}': 0,
        'labchat_disconnects_total{reason="send_queue_exceeded"}': 0,
        'labchat_disconnects_total{reason="login_timeout"}': 0,
        'labchat_disconnects_total{reason="room_full"}': 0,
        'labchat_disconnects_total{reason="too_many_from_host"}': 0,
        'labchat_disconnects_total{reason="server_shutting_down"}': 0,
        "labchat_flood_dropped_total": 0,
    }


def test_the_registry_also_shows_the_process(lab: Lab) -> None:
    text = exposition(room_registry(lab.room)).decode()
    assert "\nprocess_resident_memory_bytes " in text


def test_users_online_and_logins_are_counted_by_transport(lab: Lab) -> None:
    lab.user("alice", "websocket")
    bob = lab.user("bob")
    lab.user("carol")
    bob.types("/quit")
    figures_now = scraped(lab)
    assert figures_now['labchat_users_online{transport="tcp"}'] == 1
    assert figures_now['labchat_users_online{transport="websocket"}'] == 1
    assert figures_now['labchat_logins_total{transport="tcp"}'] == 2
    assert figures_now['labchat_logins_total{transport="websocket"}'] == 1


def test_a_rename_is_no_new_login(lab: Lab) -> None:
    alice = lab.user("alice")
    alice.types("/nick carol")
    assert scraped(lab)['labchat_logins_total{transport="tcp"}'] == 1


def test_messages_actions_and_private_messages_are_relayed_lines(lab: Lab) -> None:
    alice, _ = lab.users("alice", "bob")
    alice.types("hello", "/me waves")
    lab.clock.advance(1000)
    alice.types("/msg bob psst", "/msg nobody psst", "/who")
    assert scraped(lab)["labchat_lines_relayed_total"] == 3


def test_every_line_any_connection_receives_is_one_delivery() -> None:
    lab = Lab()
    users = [lab.user("alice"), lab.user("bob"), lab.connect()]
    users[0].types("hello", "/who", "/msg bob psst")
    users[1].types("/nick robert", "/me waves")
    users[2].types("bad name!")
    received = sum(user.heard().count(b"\r\n") for user in users)
    # Logins 6, hello 2, /who 1, /msg 2, /nick 2, /me 2, the bad name 1.
    assert received == 16
    assert scraped(lab)["labchat_deliveries_total"] == received


def test_flood_control_counts_each_line_it_drops(lab: Lab) -> None:
    alice = lab.user("alice")
    alice.types("one", "two", "three", "/me four")
    assert scraped(lab)["labchat_flood_dropped_total"] == 2


def test_each_way_of_going_is_counted_under_its_reason(lab: Lab) -> None:
    lab.user("alice").types("/quit gone fishing")
    lab.user("bob").hangs_up()
    lab.user("carol").session.input_ended()
    lab.user("dave").session.connection_lost(wire.SEND_QUEUE_EXCEEDED)
    lab.connect().types("/quit")
    lab.connect()
    lab.clock.advance(60)
    assert disconnects(lab) == {
        "quit": 2,
        "connection_lost": 2,
        "send_queue_exceeded": 1,
        "login_timeout": 1,
        "room_full": 0,
        "too_many_from_host": 0,
        "server_shutting_down": 0,
    }


def test_a_connection_is_counted_once_however_it_ends(lab: Lab) -> None:
    alice = lab.user("alice")
    alice.types("/quit")
    alice.hangs_up()
    timed_out = lab.connect()
    lab.clock.advance(60)
    timed_out.hangs_up()
    assert sum(disconnects(lab).values()) == 2


def test_room_full_and_shutdown_are_counted(lab: Lab) -> None:
    lab.users("alice", "bob", "carol")
    lab.connect()
    lab.connect().types("dave")
    lab.room.shut_down()
    assert disconnects(lab)["room_full"] == 2
    assert disconnects(lab)["server_shutting_down"] == 3
