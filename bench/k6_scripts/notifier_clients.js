// The notifier bench's WebSocket clients (bench/phases/notifier.py runs this with k6).
//
// BENCH_WS_CLIENTS sockets to BENCH_WS_URL, spread over BENCH_WS_VUS virtual users; each VU
// keeps BENCH_WS_DIALS_PER_VU handshakes in flight until its share is open. A client is
// subscribed when its first frame, the snapshot, arrives (anything else: failed).
//
// Then every frame is searched for the probe needles (BENCH_WS_NEEDLES, a JSON list: the text
// `"user_id":"<probe user>"` that the update frame carries once the probe's score is in the
// top). The first frame of a client holding needle i is recorded as
// bench_ws_frame_at_ms{probe=i} = Date.now(): wall-clock milliseconds of the same machine as
// the bench's probe, which subtracts the time its POST was answered 202. Frames are not
// parsed: a substring search per frame keeps the client's CPU low.
import { WebSocket } from 'k6/experimental/websockets';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const url = __ENV.BENCH_WS_URL;
const clients = parseInt(__ENV.BENCH_WS_CLIENTS, 10);
const vus = parseInt(__ENV.BENCH_WS_VUS, 10);
const dialsPerVu = parseInt(__ENV.BENCH_WS_DIALS_PER_VU, 10);
const needles = JSON.parse(__ENV.BENCH_WS_NEEDLES);
const probeTags = needles.map((_, index) => ({ probe: String(index) }));

const subscribed = new Counter('bench_ws_subscribed');
const failed = new Counter('bench_ws_failed');
const dialAt = new Trend('bench_ws_dial_at_ms');
const subscribedAt = new Trend('bench_ws_subscribed_at_ms');
const frameAt = new Trend('bench_ws_frame_at_ms');

export const options = {
  scenarios: {
    clients: {
      executor: 'per-vu-iterations',
      vus,
      iterations: 1,
      maxDuration: '30m', // the bench stops the run through the REST API long before
      gracefulStop: '0s',
    },
  },
  summaryTrendStats: ['min', 'max', 'count'],
};

export default function () {
  const vu = exec.vu.idInTest - 1;
  const share = Math.floor(clients / vus) + (vu < clients % vus ? 1 : 0);
  let dialled = 0;

  const dial = () => {
    if (dialled >= share) {
      return;
    }
    dialled += 1;
    dialAt.add(Date.now());
    const ws = new WebSocket(url);
    const seen = needles.map(() => false);
    let state = 'dialling'; // then 'subscribed' or 'failed'

    const fail = (event) => {
      if (state === 'dialling') {
        state = 'failed';
        failed.add(1);
        console.warn(`client failed before its snapshot: ${(event && event.error) || event}`);
        dial();
      }
    };
    ws.onmessage = (event) => {
      const now = Date.now();
      const data = event.data;
      if (state === 'dialling') {
        if (!data.startsWith('{"type":"snapshot"')) {
          fail(data.slice(0, 200));
          return;
        }
        state = 'subscribed';
        subscribed.add(1);
        subscribedAt.add(now);
        dial();
        return;
      }
      if (state !== 'subscribed') {
        return; // failed first (an error before its snapshot): not one of the measured clients
      }
      for (let index = 0; index < needles.length; index++) {
        if (!seen[index] && data.indexOf(needles[index]) >= 0) {
          seen[index] = true;
          frameAt.add(now, probeTags[index]);
        }
      }
    };
    ws.onerror = fail;
    ws.onclose = fail;
  };

  for (let index = 0; index < dialsPerVu; index++) {
    dial();
  }
}
