// Open-loop score load for the freshness phases: batches POSTed to ingest at a constant
// arrival rate (k6 starts each request on schedule whether or not earlier ones answered, so
// a slow server shows up as latency and dropped iterations, never as a lower offered rate).
//
// Environment: URL (ingest base URL), TOKEN, TAG (unique event-id prefix), RATE (requests/s),
// DURATION_S, EVENTS (per request), FIRST_COMPETITION, COMPETITIONS (the range of competition
// indexes used), USERS, SUMMARY (where handleSummary writes its JSON).
import http from "k6/http";
import exec from "k6/execution";
import { Counter } from "k6/metrics";

const URL = `${__ENV.URL}/api/v1/scores/batch`;
const RATE = parseInt(__ENV.RATE, 10);
const EVENTS = parseInt(__ENV.EVENTS, 10);
const FIRST = parseInt(__ENV.FIRST_COMPETITION, 10);
const COMPETITIONS = parseInt(__ENV.COMPETITIONS, 10);
const USERS = parseInt(__ENV.USERS, 10);
const PARAMS = {
  headers: { Authorization: `Bearer ${__ENV.TOKEN}`, "Content-Type": "application/json" },
  responseType: "none",
};

const accepted = new Counter("events_accepted");
const refused = new Counter("requests_refused"); // any answer but 202, and no answer
const refused4xx = new Counter("requests_refused_4xx");
const refused5xx = new Counter("requests_refused_5xx");
const unanswered = new Counter("requests_unanswered"); // timeout or connection error

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ["p(50)", "p(99)", "max", "avg"],
  scenarios: {
    load: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: `${__ENV.DURATION_S}s`,
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 20)),
      maxVUs: Math.max(50, RATE),
    },
  },
};

export default function () {
  const iteration = exec.scenario.iterationInTest;
  const events = [];
  for (let k = 0; k < EVENTS; k++) {
    const n = iteration * EVENTS + k;
    events.push({
      event_id: `${__ENV.TAG}-${n}`,
      competition_id: `c${FIRST + (n % COMPETITIONS)}`,
      user_id: `bg${n % USERS}`,
      value: n,
    });
  }
  const response = http.post(URL, JSON.stringify({ events: events }), PARAMS);
  if (response.status === 202) {
    accepted.add(EVENTS);
  } else {
    refused.add(1);
    if (response.status === 0) {
      unanswered.add(1);
    } else if (response.status >= 500) {
      refused5xx.add(1);
    } else {
      refused4xx.add(1);
    }
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
