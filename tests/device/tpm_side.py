"""What the TPM sealing tests share: chips (real swtpm processes) started and
stopped for a test, the policy authority, and boot chains measured as a
verified boot would measure them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgeward.board import swtpm
from edgeward.device.storage.tpm import Tpm
from edgeward.trust import tpmpolicy
from edgeward.trust.digest import DIGEST_SIZE, sha384
from tests.conftest import require_tool

AUTHORITY = ec.generate_private_key(ec.SECP384R1())  # the OS vendor's policy key
STRANGER = ec.generate_private_key(ec.SECP384R1())
REF = b"edgeward data-volume v1"
PCR = tpmpolicy.BOOT_PCR

# what each stage measures into the PCR: the next stage's signed digest
GOOD = [sha384(b"bl2 1.0"), sha384(b"kernel 5.15.1"), sha384(b"rootfs 2024.1")]
UPDATE = [sha384(b"bl2 1.0"), sha384(b"kernel 5.15.2"), sha384(b"rootfs 2024.2")]
TAMPERED = [sha384(b"bl2 1.0"), sha384(b"kernel 5.15.1 + implant"), sha384(b"rootfs 2024.1")]

Chips = Callable[[str], swtpm.SoftwareTpm]


def expected(chain: list[bytes]) -> bytes:
    """The PCR value after ``chain`` from reset, computed as the vendor would."""
    value = bytes(DIGEST_SIZE)
    for digest in chain:
        value = sha384(value + digest)
    return value


def approve(chain: list[bytes], version: int,
            key: ec.EllipticCurvePrivateKey = AUTHORITY) -> tpmpolicy.ApprovedPolicy:
    return tpmpolicy.approve(key, [PCR], [expected(chain)], version, REF)


def boot(tpm: Tpm, chain: list[bytes]) -> None:
    for digest in chain:
        tpm.extend(PCR, digest)


def provision(chip: swtpm.SoftwareTpm, version: int = 1) -> None:
    with Tpm(chip.tcti) as tpm:
        tpm.define_counter()
        tpm.advance_counter_to(version)


@pytest.fixture(name="chips")
def chips_fixture(tmp_path: Path) -> Iterator[Chips]:
    """``chips(name)`` powers on the chip named ``name`` (its state under tmp_path):
    a new name is another board's chip, the same name after ``stop()`` a reboot."""
    require_tool("swtpm")
    require_tool("swtpm_setup")
    running: list[swtpm.SoftwareTpm] = []

    def power_on(name: str) -> swtpm.SoftwareTpm:
        chip = swtpm.start(tmp_path / name)
        running.append(chip)
        return chip

    yield power_on
    for chip in running:
        chip.stop()
