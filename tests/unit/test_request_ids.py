"""shared.logging.new_request_id: 32 hex characters, unique in a process and across forks."""

from __future__ import annotations

import os
import re

from shared.logging import new_request_id


def test_ids_are_32_hex_characters_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without pytest's clean-up
        os.close(read_end)
        os.write(write_end, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    parent = [new_request_id() for _ in range(3)]
    with os.fdopen(read_end) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    assert len(child) == 3
    assert {request_id[:16] for request_id in child}.isdisjoint(r[:16] for r in parent)
