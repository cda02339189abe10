// Live leaderboard page: /about for the name, windows and the viewer's percentile, one
// WebSocket for the board (snapshot, then updates), reconnect with exponential back-off.
// URL: /leaderboards/<competition>?window=&user=&top=&embed=1&theme=  (a token may follow in
// #token=..., kept out of server logs and Referer headers).
(function () {
  "use strict";

  const path = window.location.pathname.split("/");
  const competitionId = decodeURIComponent(path[path.length - 1] || "");
  const query = new URLSearchParams(window.location.search);
  const user = query.get("user");
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const HEARTBEAT_MS = 25000;      // a ping this often; no frame for twice that: reconnect
  const ABOUT_MIN_INTERVAL_MS = 2000;  // the viewer's percentile is re-read at most this often
  const ANNOUNCED_MOVES = 3;        // the aria-live region names at most this many changes
  const PERIOD_NAMES = { daily: "Today", weekly: "This week", monthly: "This month" };
  // close codes after which reconnecting cannot help
  const FINAL_CLOSES = { 1008: "access refused", 4404: "competition deleted" };

  const el = (id) => document.getElementById(id);
  let selectedWindow = query.get("window") || "alltime";
  let backoffMs = BACKOFF_FIRST_MS;
  let board = { top: [], me: null, version: 0 };
  let about = null;
  let socket = null;
  let generation = 0;               // bumps on every new socket: stale sockets' events are ignored
  let heartbeat = null;
  let lastFrameAt = 0;
  let retryTimer = null;
  let retryTicker = null;
  let countdownTimer = null;
  let aboutTimer = null;
  let aboutFetchedAt = 0;
  let teamSocket = null;            // the team board's socket, while /about carries teams
  let teamSocketWindow = null;
  let teamGeneration = 0;
  let teamRows = null;              // the team board's top, as the team socket last sent it
  let teamRowsWindow = null;
  const TEAM_ROWS = 5;
  const TEAM_RETRY_MS = 2000;
  let wasLive = false;              // a snapshot arrived once: later connects are reconnects
  let lost = false;                 // the live connection dropped and is not back yet

  // --- about: name, tabs, countdown, percentile ---------------------------------------
  function aboutUrl() {
    const params = new URLSearchParams({ window: selectedWindow });
    if (user) params.set("user", user);
    return "/leaderboards/" + encodeURIComponent(competitionId) + "/about?" + params.toString();
  }

  async function loadAbout() {
    aboutFetchedAt = Date.now();
    const wanted = selectedWindow;
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const response = await fetch(aboutUrl(), { headers: headers, cache: "no-store" });
      if (!response.ok) return;     // the socket reports refusals; the page keeps the id
      const body = await response.json();
      if (wanted !== selectedWindow) return;
      body.receivedAt = Date.now();
      about = body;
      renderAbout();
    } catch (error) {
      // offline: the connection state already says so; the next snapshot tries again
    }
  }

  function refreshAboutSoon() {
    if (aboutTimer !== null) return;
    const wait = Math.max(0, aboutFetchedAt + ABOUT_MIN_INTERVAL_MS - Date.now());
    aboutTimer = window.setTimeout(() => { aboutTimer = null; loadAbout(); }, wait);
  }

  function tabLabel(tab) {
    if (tab.kind === "alltime") return "All time";
    if (tab.kind === "current") return PERIOD_NAMES[about.reset] || tab.period;
    return tab.period;
  }

  function renderAbout() {
    el("title").textContent = about.name;
    document.title = about.name + " · live leaderboard";
    renderTabs();
    renderCountdown();
    renderTeams();
    renderMe();
  }

  function renderTabs() {
    // rebuilt only when the windows change (a new period): a re-read of /about must not
    // take the focus away from the tab the keyboard is on
    const tabs = el("tabs");
    const windows = about && about.windows.length > 1 ? about.windows : [];
    const key = windows.map((tab) => tab.window + "=" + (tab.period || "")).join(" ");
    if (tabs.dataset.key !== key) {
      const hadFocus = tabs.contains(document.activeElement);
      tabs.dataset.key = key;
      tabs.replaceChildren();
      for (const tab of windows) {
        const button = document.createElement("button");
        button.type = "button";
        button.id = "tab-" + tab.window;
        button.setAttribute("role", "tab");
        button.setAttribute("aria-controls", "panel");
        button.dataset.window = tab.window;
        button.dataset.period = tab.period || "";
        button.textContent = tabLabel(tab);
        if (tab.kind === "current") button.title = tab.period;
        button.addEventListener("click", () => selectWindow(tab.window, false));
        tabs.appendChild(button);
      }
      if (hadFocus) focusSelectedTab();
    }
    for (const button of tabs.querySelectorAll('[role="tab"]')) {
      const selected = button.dataset.window === selectedWindow ||
        (button.dataset.window === "current" && button.dataset.period === selectedWindow);
      button.setAttribute("aria-selected", selected ? "true" : "false");
      button.tabIndex = selected ? 0 : -1;
      if (selected) el("panel").setAttribute("aria-labelledby", button.id);
    }
  }

  function focusSelectedTab() {
    const tab = el("tabs").querySelector('[tabindex="0"]') || el("tabs").querySelector('[role="tab"]');
    if (tab) tab.focus();
  }

  // a tablist: arrows/Home/End move between tabs and select (automatic activation)
  el("tabs").addEventListener("keydown", (event) => {
    const tabs = Array.from(el("tabs").querySelectorAll('[role="tab"]'));
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (index + 1) % tabs.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + tabs.length) % tabs.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = tabs.length - 1;
    if (next === null) return;
    event.preventDefault();
    selectWindow(tabs[next].dataset.window, true);
  });

  function selectWindow(windowName, focus) {
    if (windowName === selectedWindow) return;
    selectedWindow = windowName;
    const params = new URLSearchParams(window.location.search);
    params.set("window", windowName);
    window.history.replaceState(null, "", "?" + params.toString() + window.location.hash);
    board = { top: [], me: null, version: 0 };
    renderTabs();
    if (focus) focusSelectedTab();
    renderBoard(null);
    loadAbout();
    connect(false);
  }

  function renderCountdown() {
    window.clearInterval(countdownTimer);
    const target = about && (about.period_ends_at || about.ends_at);
    const countdown = el("countdown");
    if (!target) { countdown.hidden = true; return; }
    // the server's clock, not the screen's: an organiser's laptop may be minutes off
    const skewMs = Date.parse(about.server_time) - about.receivedAt;
    const endsAt = Date.parse(target);
    const label = about.period_ends_at ? "Period ends in " : "Ends in ";
    const tick = () => {
      const leftMs = endsAt - (Date.now() + skewMs);
      if (leftMs <= 0) {
        window.clearInterval(countdownTimer);
        countdown.textContent = about.period_ends_at ? "Period ended" : "Ended";
        // a new period: new tabs (a "current" socket follows the new period by itself)
        window.setTimeout(loadAbout, 1500);
        return;
      }
      countdown.textContent = label + formatDuration(leftMs);
    };
    countdown.hidden = false;
    tick();
    countdownTimer = window.setInterval(tick, 1000);
  }

  function formatDuration(ms) {
    const total = Math.floor(ms / 1000);
    const days = Math.floor(total / 86400);
    const pad = (n) => String(n).padStart(2, "0");
    const clock = pad(Math.floor((total % 86400) / 3600)) + ":" + pad(Math.floor((total % 3600) / 60)) +
      ":" + pad(total % 60);
    return days > 0 ? days + "d " + clock : clock;
  }

  function renderTeams() {
    // a competition with a team board: /about carries "teams" ({rank, team_id, score}); the
    // team socket then keeps the rows live (teamRows); without one the section stays hidden
    const teams = el("teams");
    if (!about || !Array.isArray(about.teams)) {
      teams.hidden = true;
      return;
    }
    if (teamRows === null || teamRowsWindow !== selectedWindow) teamRows = about.teams;
    connectTeams();
    const list = el("team-rows");
    list.replaceChildren();
    for (const team of teamRows) {
      const item = document.createElement("li");
      item.className = "team";
      item.dataset.team = team.team_id;
      item.textContent = rankText(team.rank) + " " + team.team_id + " · " + formatScore(team.score);
      list.appendChild(item);
    }
    teams.hidden = teamRows.length === 0;
  }

  // --- the team board's socket (?board=teams): its frames' entries name the team in user_id
  function teamSocketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ window: selectedWindow, board: "teams", top: String(TEAM_ROWS) });
    return scheme + "//" + window.location.host + "/ws/leaderboards/" +
      encodeURIComponent(competitionId) + "?" + params.toString();
  }

  // Closing a socket that is still connecting makes browsers log an error ("closed before
  // the connection is established"); a viewer clicking through the window tabs does that.
  // Such a socket is closed as soon as it opens instead (its frames are ignored: its
  // generation is over).
  function closeWhenOpen(previous, reason) {
    if (previous.readyState === WebSocket.CONNECTING) {
      previous.addEventListener("open", () => previous.close(1000, reason));
    } else {
      previous.close(1000, reason);
    }
  }

  function connectTeams() {
    if (teamSocket !== null && teamSocketWindow === selectedWindow) return;
    if (teamSocket !== null) closeWhenOpen(teamSocket, "window changed");
    const mine = ++teamGeneration;
    const opened = token ? new WebSocket(teamSocketUrl(), ["bearer", token]) : new WebSocket(teamSocketUrl());
    teamSocket = opened;
    teamSocketWindow = selectedWindow;
    opened.addEventListener("message", (event) => {
      if (mine !== teamGeneration) return;
      const message = JSON.parse(event.data);
      if (!("top" in message)) return;
      teamRows = message.top.map((entry) => ({ rank: entry.rank, team_id: entry.user_id, score: entry.score }));
      teamRowsWindow = teamSocketWindow;
      renderTeams();
    });
    opened.addEventListener("close", (event) => {
      if (mine !== teamGeneration) return;
      teamSocket = null;
      if (!(event.code in FINAL_CLOSES)) window.setTimeout(connectTeams, TEAM_RETRY_MS);
    });
  }

  // --- the board ----------------------------------------------------------------------
  function formatScore(score) {
    return Number.isInteger(score) ? score.toLocaleString() : score.toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  function rankText(rank) {
    return "#" + rank;
  }

  function movement(entry) {
    if (!("previous_rank" in entry)) return null;  // snapshots carry no movement
    if (entry.previous_rank === null) return "new";
    if (entry.previous_rank > entry.rank) return "up";
    if (entry.previous_rank < entry.rank) return "down";
    return null;
  }

  function moveBadge(kind, entry) {
    const badge = document.createElement("span");
    badge.className = "move " + kind;
    const arrow = document.createElement("span");
    arrow.setAttribute("aria-hidden", "true");
    const spoken = document.createElement("span");
    spoken.className = "sr-only";
    if (kind === "new") {
      arrow.textContent = "new";
      spoken.textContent = "new entry";
    } else {
      const steps = Math.abs(entry.previous_rank - entry.rank);
      arrow.textContent = (kind === "up" ? "▲" : "▼") + steps;
      spoken.textContent = (kind === "up" ? "up " : "down ") + steps;
    }
    badge.append(arrow, spoken);
    return badge;
  }

  function renderBoard(changes) {
    const rows = el("rows");
    rows.replaceChildren();
    if (board.top.length === 0) {
      const row = rows.insertRow();
      row.className = "empty";
      const cell = row.insertCell();
      cell.colSpan = 3;
      cell.textContent = board.version === 0 && !wasLive ? "waiting for the first snapshot…" : "no scores yet";
    }
    for (const entry of board.top) {
      const row = rows.insertRow();
      row.dataset.userId = entry.user_id;
      if (entry.rank === 1) row.classList.add("leader");
      if (user && entry.user_id === user) row.classList.add("is-me");
      const rank = row.insertCell();
      rank.className = "rank";
      rank.textContent = String(entry.rank);
      const player = row.insertCell();
      player.className = "player";
      player.textContent = entry.user_id;
      const score = row.insertCell();
      score.className = "score";
      score.textContent = formatScore(entry.score);
      const kind = changes ? movement(entry) : null;
      if (kind) {
        row.dataset.move = kind;
        row.classList.add(kind === "up" ? "moved-up" : kind === "down" ? "moved-down" : "entered");
        rank.appendChild(moveBadge(kind, entry));
      }
    }
    el("version").textContent = board.version ? "v" + board.version : "";
    el("window").textContent = selectedWindow;
  }

  function renderMe() {
    if (!user) return;
    el("me").hidden = false;
    el("me-label").textContent = user;
    const me = board.me;
    el("me-rank").textContent = me ? rankText(me.rank) : "not ranked yet";
    el("me-score").textContent = me ? formatScore(me.score) + " pts" : "";
    const move = el("me-move");
    move.replaceChildren();
    const kind = me ? movement(me) : null;
    if (kind) move.appendChild(moveBadge(kind, me));
    const read = about && about.me;
    el("me-percentile").textContent = me && read && read.rank === me.rank
      ? formatPercentile(read.percentile) + " · " + read.total.toLocaleString() + " ranked"
      : "";
    // a tournament with max_attempts: what the viewer has left (from /about, refreshed when
    // the viewer's standing changes)
    const attempts = about && about.attempts;
    el("me-attempts").textContent = attempts
      ? attempts.used + " of " + attempts.max + " attempts used" : "";
  }

  function formatPercentile(percentile) {
    // the share of the window's ranked users this user beats or ties (the best is 100)
    const value = Math.floor(percentile);
    const tens = value % 100;
    const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[value % 10] || "th");
    return value + suffix + " percentile";
  }

  function announce(changes, meBefore) {
    const phrases = [];
    for (const entry of changes) {
      const kind = movement(entry);
      if (kind === "up") phrases.push(entry.user_id + " up to " + rankText(entry.rank));
      else if (kind === "down") phrases.push(entry.user_id + " down to " + rankText(entry.rank));
      else if (kind === "new") phrases.push(entry.user_id + " enters at " + rankText(entry.rank));
      if (phrases.length === ANNOUNCED_MOVES) break;
    }
    const me = board.me;
    if (user && me && (!meBefore || meBefore.rank !== me.rank)) {
      phrases.unshift("You are now " + rankText(me.rank));
    }
    if (phrases.length) el("announcer").textContent = phrases.join(". ") + ".";
  }

  // --- the socket ---------------------------------------------------------------------
  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ window: selectedWindow });
    if (user) params.set("user", user);
    if (query.get("top")) params.set("top", query.get("top"));
    return scheme + "//" + window.location.host + "/ws/leaderboards/" +
      encodeURIComponent(competitionId) + "?" + params.toString();
  }

  function setStatus(kind, text) {
    const status = el("status");
    status.dataset.state = kind;
    status.textContent = text;
  }

  function onMessage(mine, event) {
    if (mine !== generation) return;
    lastFrameAt = Date.now();
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") {
      board = { top: message.top, me: message.me || null, version: message.version };
      backoffMs = BACKOFF_FIRST_MS;
      if (!about || about.competition_id !== message.competition_id) el("title").textContent = message.competition_id;
      setStatus("live", "live");
      if (!wasLive || lost) el("announcer").textContent = lost ? "Live again." : "Live.";
      wasLive = true;
      lost = false;
      renderBoard(null);
      renderMe();
      refreshAboutSoon();
    } else if (message.type === "update") {
      const meBefore = board.me;
      if ("top" in message) board.top = message.top;
      if ("me" in message) board.me = message.me;
      board.version = message.version;
      if ("top" in message) renderBoard(message.top);
      announce("top" in message ? message.top : [], meBefore);
      renderMe();
      if ("me" in message) refreshAboutSoon();
    } else if (message.type === "error") {
      setStatus("closed", message.error.message);
    }
  }

  function stopTimers() {
    window.clearInterval(heartbeat);
    window.clearTimeout(retryTimer);
    window.clearInterval(retryTicker);
  }

  function connect(retrying) {
    stopTimers();
    const mine = ++generation;
    if (socket) {
      const previous = socket;
      socket = null;
      closeWhenOpen(previous, "window changed");
    }
    // a retry after a lost connection is "reconnecting"; a first connect or a window change
    // is "connecting"
    if (retrying) setStatus("reconnecting", "reconnecting…");
    else setStatus("connecting", "connecting…");
    const opened = token ? new WebSocket(socketUrl(), ["bearer", token]) : new WebSocket(socketUrl());
    socket = opened;
    lastFrameAt = Date.now();
    opened.addEventListener("message", (event) => onMessage(mine, event));
    opened.addEventListener("open", () => {
      if (mine !== generation) return;
      heartbeat = window.setInterval(() => {
        if (Date.now() - lastFrameAt > 2 * HEARTBEAT_MS) {
          opened.close(4000, "no answer");   // a silent network: try another connection
          return;
        }
        if (opened.readyState === WebSocket.OPEN) opened.send('{"type":"ping"}');
      }, HEARTBEAT_MS);
    });
    opened.addEventListener("close", (event) => {
      if (mine !== generation) return;
      stopTimers();
      if (event.code in FINAL_CLOSES) {
        setStatus("closed", event.reason || FINAL_CLOSES[event.code]);
        el("announcer").textContent = "Disconnected: " + (event.reason || FINAL_CLOSES[event.code]) + ".";
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    // exponential back-off with jitter (0.5x-1.5x), so a restarted notifier is not hit by
    // every screen at the same instant
    const delayMs = Math.round(backoffMs * (0.5 + Math.random()));
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    const reconnectAt = Date.now() + delayMs;
    const show = () => {
      const leftS = Math.max(1, Math.ceil((reconnectAt - Date.now()) / 1000));
      setStatus("reconnecting", "reconnecting in " + leftS + " s");
    };
    if (wasLive && !lost) el("announcer").textContent = "Connection lost, reconnecting.";
    lost = wasLive;
    show();
    retryTicker = window.setInterval(show, 1000);
    retryTimer = window.setTimeout(() => connect(true), delayMs);
  }

  document.addEventListener("visibilitychange", () => {
    // a tab coming back may have missed updates while the browser throttled it
    if (document.visibilityState === "visible" && socket && socket.readyState === WebSocket.OPEN) {
      socket.send('{"type":"resync"}');
    }
  });

  renderMe();
  loadAbout();
  connect(false);
})();
