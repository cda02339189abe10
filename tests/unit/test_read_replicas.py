"""WAL positions as the read pool compares them (shared/read_replicas.py)."""

from __future__ import annotations

from pydantic import SecretStr

from shared.read_replicas import lsn_text, lsn_value, record_end, replica_label

BLOCK = 8192
SEGMENT = 16 * 1024 * 1024


def test_positions_round_trip() -> None:
    assert lsn_value("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert lsn_text(lsn_value("16/B374D848")) == "16/B374D848"
    assert lsn_text(0) == "0/0"


def test_an_insert_position_past_a_page_header_is_the_page_boundary() -> None:
    # idle after a record that ended a segment: insert points past the long header
    assert record_end(3 * SEGMENT + 40, BLOCK, SEGMENT) == 3 * SEGMENT
    # ... or a page: past the short header
    assert record_end(3 * SEGMENT + 5 * BLOCK + 24, BLOCK, SEGMENT) == 3 * SEGMENT + 5 * BLOCK
    # anywhere else it is a record's end already
    assert record_end(3 * SEGMENT + 5 * BLOCK + 96, BLOCK, SEGMENT) == 3 * SEGMENT + 5 * BLOCK + 96
    assert record_end(3 * SEGMENT, BLOCK, SEGMENT) == 3 * SEGMENT


def test_a_replica_is_named_without_its_credentials() -> None:
    dsn = SecretStr("postgresql://podium:s3cret@replica-1:6432/podium")
    assert replica_label(dsn) == "replica-1:6432/podium"
    assert replica_label(SecretStr("postgresql://replica-2/podium")) == "replica-2:5432/podium"
