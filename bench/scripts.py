"""The wrk Lua scripts of each HTTP phase (unique event ids, tokens, varying keys)."""

from __future__ import annotations

from bench.workload import USER_STRIDE

_THREAD_IDS = """
local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
"""


def _headers(token: str | None) -> str:
    lines = ['wrk.headers["Content-Type"] = "application/json"']
    if token is not None:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    return "\n".join(lines) + "\n"


def plain_get() -> str:
    """The same GET every time (the URL says what)."""
    return "wrk.method = 'GET'\n"


def random_member(path_format: str, members: int) -> str:
    """A GET of ``path_format`` for a random member of a board of ``members`` each request
    (its one ``%07d`` is the member's index: user ids ``u0000000`` … as the scale bench
    seeds them)."""
    return f"""
function request()
  return wrk.format("GET", string.format("{path_format}", math.random(0, {members - 1})))
end
"""


def ingest_single(tag: str, token: str, competitions: int, users: int) -> str:
    """One score event per POST, event ids unique per run, repeat and thread."""
    return (
        _THREAD_IDS
        + _headers(token)
        + f"""
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{{"event_id":"{tag}-%d-%d","competition_id":"c%d","user_id":"u%d","value":%d}}',
    thread_id, counter, math.random(0, {competitions - 1}), math.random(0, {users - 1}),
    math.random(1, 1000000))
  return wrk.format("POST", nil, nil, body)
end
"""
    )


def ingest_batch(tag: str, token: str, competitions: int, users: int, events: int) -> str:
    """``events`` score events per POST to the batch endpoint, ids unique."""
    return (
        _THREAD_IDS
        + _headers(token)
        + f"""
local counter = 0
function request()
  local items = {{}}
  for i = 1, {events} do
    counter = counter + 1
    items[i] = string.format(
      '{{"event_id":"{tag}-%d-%d","competition_id":"c%d","user_id":"u%d","value":%d}}',
      thread_id, counter, math.random(0, {competitions - 1}), math.random(0, {users - 1}),
      math.random(1, 1000000))
  end
  return wrk.format("POST", nil, nil, '{{"events":[' .. table.concat(items, ",") .. ']}}')
end
"""
    )


def naive_post(users: int) -> str:
    """The naive app's POST: a user and a value, nothing else."""
    return (
        _headers(None)
        + f"""
function request()
  local body = string.format('{{"user_id":"u%d","value":%d}}',
    math.random(0, {users - 1}), math.random(1, 1000000))
  return wrk.format("POST", nil, nil, body)
end
"""
    )


def varying_top(competitions: int) -> str:
    """Top-10 of a random competition each request (cache keys vary)."""
    return f"""
function request()
  return wrk.format("GET", string.format("/api/v1/leaderboards/c%d/top?limit=10",
    math.random(0, {competitions - 1})))
end
"""


def varying_around(competitions: int, users: int, events: int) -> str:
    """ "Around me" of a random ranked user of a random competition each request."""
    per_competition = max(events // competitions, 1)
    return f"""
function request()
  local c = math.random(0, {competitions - 1})
  local j = c + {competitions} * math.random(0, {per_competition - 1})
  local u = (j * {USER_STRIDE}) % {users}
  return wrk.format("GET", string.format("/api/v1/leaderboards/c%d/around/u%d?radius=5", c, u))
end
"""
