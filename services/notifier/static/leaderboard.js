// Live leaderboard page: one WebSocket, snapshot then updates, reconnect with backoff.
// URL: /leaderboards/<competition>?window=&user=&top=  (a token may follow in #token=...)
(function () {
  "use strict";

  const path = window.location.pathname.split("/");
  const competitionId = decodeURIComponent(path[path.length - 1] || "");
  const query = new URLSearchParams(window.location.search);
  const user = query.get("user");
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  const MAX_BACKOFF_MS = 30000;

  const el = (id) => document.getElementById(id);
  let backoffMs = 500;
  let state = { top: [], me: null, version: 0 };
  let socket = null;

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    for (const name of ["window", "user", "top"]) {
      if (query.get(name)) params.set(name, query.get(name));
    }
    const suffix = params.toString() ? "?" + params.toString() : "";
    return scheme + "//" + window.location.host + "/ws/leaderboards/" +
      encodeURIComponent(competitionId) + suffix;
  }

  function setStatus(kind, text) {
    const status = el("status");
    status.dataset.state = kind;
    status.textContent = text;
  }

  function formatScore(score) {
    return Number.isInteger(score) ? score.toLocaleString() : score.toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  function render() {
    const rows = el("rows");
    rows.replaceChildren();
    if (state.top.length === 0) {
      const row = rows.insertRow();
      row.className = "empty";
      const cell = row.insertCell();
      cell.colSpan = 3;
      cell.textContent = "no scores yet";
    }
    for (const entry of state.top) {
      const row = rows.insertRow();
      row.dataset.userId = entry.user_id;
      if (entry.rank === 1) row.classList.add("leader");
      if (user && entry.user_id === user) row.classList.add("is-me");
      row.insertCell().textContent = String(entry.rank);
      row.insertCell().textContent = entry.user_id;
      const score = row.insertCell();
      score.className = "score";
      score.textContent = formatScore(entry.score);
      row.cells[0].className = "rank";
    }
    if (user) {
      el("me").hidden = false;
      el("me-label").textContent = user;
      el("me-rank").textContent = state.me ? "#" + state.me.rank : "not ranked yet";
      el("me-score").textContent = state.me ? formatScore(state.me.score) : "";
    }
    el("version").textContent = "v" + state.version;
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") {
      state = { top: message.top, me: message.me || null, version: message.version };
      el("title").textContent = message.competition_id;
      el("window").textContent = message.window;
      backoffMs = 500;
      setStatus("live", "live");
    } else if (message.type === "update") {
      if ("top" in message) state.top = message.top;
      if ("me" in message) state.me = message.me;
      state.version = message.version;
    } else if (message.type === "error") {
      setStatus("closed", message.error.message);
      return;
    } else {
      return;
    }
    render();
  }

  function connect() {
    setStatus("connecting", "connecting…");
    socket = token ? new WebSocket(socketUrl(), ["bearer", token]) : new WebSocket(socketUrl());
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (event) => {
      if (event.code === 1008) {  // refused (private, bad parameters): retrying will not help
        setStatus("closed", event.reason || "access refused");
        return;
      }
      const delay = Math.round(backoffMs * (0.5 + Math.random()));
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      setStatus("waiting", "reconnecting in " + Math.ceil(delay / 1000) + " s");
      window.setTimeout(connect, delay);
    });
  }

  document.addEventListener("visibilitychange", () => {
    // a tab coming back may have missed updates while the browser throttled it
    if (document.visibilityState === "visible" && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "resync" }));
    }
  });

  connect();
})();
