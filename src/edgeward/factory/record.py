"""Manufacturing records: what the factory vouches it made, signed by its station."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from edgeward.errors import InputError
from edgeward.trust import certs, keys
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.envelope import open_envelope, seal_envelope

RECORD_TYPE = "application/vnd.edgeward.manufacturing-record+json"
FIELDS = {"type", "serial", "model", "manufacturer", "certificate_sha384", "fuse_hash",
          "root_key_hash", "security_version", "os_security_version", "release",
          "provisioned_at"}


def sign_record(record: dict[str, Any], station_key: keys.PrivateKey) -> bytes:
    return seal_envelope(RECORD_TYPE, canonical(record), [station_key]).to_json()


def verify_record(data: bytes, station_cert: x509.Certificate, ca_cert: x509.Certificate,
                  now: dt.datetime) -> dict[str, Any]:
    """Check the station certificate chains to the CA and signed this record."""
    certs.verify_issued_by(station_cert, ca_cert, now)
    certs.require_station(station_cert)
    station = certs.public_key_of(station_cert)
    payload, _ = open_envelope(data, RECORD_TYPE, {keys.keyid(station): station},
                               "manufacturing record")
    f = Fields(load_object(payload, "manufacturing record", InputError),
               "manufacturing record", InputError).expect(FIELDS)
    if f.str_("type") != "manufacturing-record":
        f.fail("type must be 'manufacturing-record'")
    return f.obj
