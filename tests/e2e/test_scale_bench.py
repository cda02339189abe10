"""`python -m bench.scale_micro` (issue #18's scale evidence) end to end at a tiny size: the
board is rebuilt, measured, and read over HTTP by query processes that see the seeded board
(a read of another schema or prefix would be a 404, counted as non-2xx). Never timings."""

from __future__ import annotations

from bench.scale_micro import run


async def test_the_scale_bench_reads_the_seeded_board_through_query_processes() -> None:
    members = 2_000
    results = await run(members, distinct=200, samples=20, http_seconds=0.5)
    assert results["members"] == members
    assert results["rebuild"]["members_per_s"] > 0
    assert results["redis_memory"]["bytes_per_member"] > 0
    assert set(results["reads"]) == {"unique", "dense"}
    http = results["http_reads"]
    assert set(http) == {"hot_cache", "ttl_0"}
    for figures in http.values():
        assert set(figures) == {"top_page", "user", "around"}
        for figure in figures.values():
            assert figure["req_s"] > 0
            assert figure["non_2xx"] == 0, figure
            assert figure["socket_errors"] == 0, figure
