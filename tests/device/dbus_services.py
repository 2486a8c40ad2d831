"""Stand-ins for the gateway's system services on a test bus, written with jeepney.

Run as a real bus client in a process of its own::

    python -m tests.device.dbus_services bluez|network-manager BUS_ADDRESS RECORD

It owns its well-known name (``org.bluez`` or ``org.freedesktop.NetworkManager``),
prints ``ready`` once it does, then answers method calls until it is terminated. Every
call that reaches it is appended to RECORD as one JSON line (sender, path, interface,
member, body) *before* it answers, so a test can tell whether a call ever arrived.

BlueZ: ``/org/bluez/hci0`` with ``org.bluez.Adapter1.StartDiscovery()`` (which also
emits ``PropertiesChanged(Discovering=true)``, a signal), ``StopDiscovery()``,
``org.freedesktop.DBus.Properties.Get`` and ``ObjectManager.GetManagedObjects`` at ``/``.
NetworkManager: ``/org/freedesktop/NetworkManager`` with ``Enable(b)``,
``Properties.Get`` (``Version``, ``NetworkingEnabled``) and
``/org/freedesktop/NetworkManager/Settings`` ``AddConnection(a{sa{sv}})``.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from jeepney import (
    DBusAddress,
    HeaderFields,
    Message,
    MessageType,
    new_error,
    new_method_return,
    new_signal,
)
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

BLUEZ = "org.bluez"
NETWORK_MANAGER = "org.freedesktop.NetworkManager"
ADAPTER = "/org/bluez/hci0"
NM_PATH = "/org/freedesktop/NetworkManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
UNKNOWN = "org.freedesktop.DBus.Error.UnknownMethod"


class Service:
    def __init__(self, name: str, conn: DBusConnection, record: Path) -> None:
        self.name = name
        self.conn = conn
        self.record = record
        self.state: dict[str, tuple[str, Any]] = (
            {"Address": ("s", "00:1A:7D:DA:71:13"), "Powered": ("b", True),
             "Discovering": ("b", False)} if name == BLUEZ else
            {"Version": ("s", "1.42.4"), "NetworkingEnabled": ("b", True)})

    def note(self, msg: Message) -> None:
        fields = msg.header.fields
        entry = {"sender": fields.get(HeaderFields.sender, ""),
                 "path": fields.get(HeaderFields.path, ""),
                 "interface": fields.get(HeaderFields.interface, ""),
                 "member": fields.get(HeaderFields.member, ""),
                 "body": json.loads(json.dumps(msg.body, default=repr))}
        with self.record.open("a") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()

    def answer(self, msg: Message) -> Message:
        fields = msg.header.fields
        path = fields.get(HeaderFields.path, "")
        interface = fields.get(HeaderFields.interface, "")
        member = fields.get(HeaderFields.member, "")
        if interface == PROPERTIES and member == "Get":
            _, prop = msg.body
            if prop not in self.state:
                return new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs",
                                 "s", (f"no property {prop}",))
            return new_method_return(msg, "v", (self.state[prop],))
        if self.name == BLUEZ:
            if path == "/" and member == "GetManagedObjects":
                props = {"org.bluez.Adapter1": dict(self.state)}
                return new_method_return(msg, "a{oa{sa{sv}}}", ({ADAPTER: props},))
            if (path, interface) == (ADAPTER, "org.bluez.Adapter1") and member in (
                    "StartDiscovery", "StopDiscovery"):
                self.state["Discovering"] = ("b", member == "StartDiscovery")
                changed = new_signal(DBusAddress(ADAPTER, interface=PROPERTIES),
                                     "PropertiesChanged", "sa{sv}as",
                                     ("org.bluez.Adapter1",
                                      {"Discovering": self.state["Discovering"]}, []))
                self.conn.send(changed)
                return new_method_return(msg)
        else:
            if (path, interface, member) == (NM_PATH, NETWORK_MANAGER, "Enable"):
                self.state["NetworkingEnabled"] = ("b", bool(msg.body[0]))
                return new_method_return(msg)
            if member == "AddConnection" and path == f"{NM_PATH}/Settings":
                return new_method_return(msg, "o", (f"{NM_PATH}/Settings/1",))
        return new_error(msg, UNKNOWN, "s", (f"no method {interface}.{member} at {path}",))

    def serve(self) -> None:
        while True:
            msg = self.conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            self.note(msg)
            self.conn.send(self.answer(msg))


def main(argv: list[str]) -> int:
    kind, address, record = argv
    name = {"bluez": BLUEZ, "network-manager": NETWORK_MANAGER}[kind]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conn = open_dbus_connection(address)
    reply = conn.send_and_get_reply(message_bus.RequestName(name, 4), timeout=5)
    if reply.body[0] != 1:  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        print(f"could not own {name}: {reply.body}", flush=True)
        return 1
    print("ready", flush=True)
    try:
        Service(name, conn, Path(record)).serve()
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
