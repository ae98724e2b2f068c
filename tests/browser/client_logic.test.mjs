// Pure logic of the browser client against a fake WebSocket (node --test; run by
// tests/browser/test_client_package.py): resume URLs, duplicate drops, gaps, the close-code table.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_REQUEST_TARGET, MAX_SINCE_CHANNELS, NetrunClient, sinceParam } from "../../netrun_ws/static/client/netrun-ws.js";

class FakeSocket {
  static made = [];
  constructor(url, protocols) {
    this.url = new URL(url);
    this.protocols = protocols;
    this.sent = [];
    this.closed = null;
    FakeSocket.made.push(this);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code, reason) { this.closed = { code, reason }; }
  open() { this.onopen?.(); }
  receive(message) { this.onmessage?.({ data: JSON.stringify(message) }); }
  end(code, reason = "") { this.onclose?.({ code, reason }); }
}

const NOW = { initial_delay: 0, max_delay: 0, max_attempts: 5, backoff_multiplier: 2, jitter: "none" };
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

function client(options = {}) {
  FakeSocket.made = [];
  const events = [];
  const made = new NetrunClient("ws://example.test/ws", {
    WebSocket: FakeSocket, reconnect: NOW, probe: false, ...options,
  });
  for (const type of ["state", "message", "gap", "welcome", "recovered"]) {
    made.on(type, (detail) => events.push([type, detail]));
  }
  return { client: made, events, of: (type) => events.filter(([t]) => t === type).map(([, d]) => d) };
}

const welcome = (extra = {}) => ({
  type: "connect", session_id: "s1", user_id: "alice", reconnect: NOW, ...extra,
});
const said = (offset, epoch = "e1") => ({ type: "said", pos: { channel: "room:lobby", offset, epoch } });

test("a resume asks for the session from the last positions, and duplicates are dropped", async () => {
  const { client: c, of } = client({ token: "t0k", params: { user_id: "alice" } });
  c.connect();
  await settle();
  let socket = FakeSocket.made[0];
  assert.deepEqual(socket.protocols, ["netrun-ws", "bearer.t0k"]);
  assert.equal(socket.url.searchParams.get("session_id"), null);
  socket.open();
  socket.receive(welcome({ positions: { "user:alice": { offset: 3, epoch: "u1" } } }));
  socket.receive({ type: "ping" });
  assert.deepEqual(socket.sent, [{ type: "pong" }]);
  socket.receive(said(1));
  socket.receive(said(2));
  socket.end(1006);
  await settle();
  socket = FakeSocket.made[1];
  assert.equal(socket.url.searchParams.get("session_id"), "s1");
  assert.equal(socket.url.searchParams.get("user_id"), "alice");
  assert.deepEqual(JSON.parse(socket.url.searchParams.get("since")), {
    "user:alice": { offset: 3, epoch: "u1" },
    "room:lobby": { offset: 2, epoch: "e1" },
  });
  socket.open();
  socket.receive(welcome({ resumed: true, positions: { "user:alice": { offset: 3, epoch: "u1" }, "room:lobby": { offset: 4, epoch: "e1" } } }));
  socket.receive(said(2)); // replay overlapping what arrived: dropped
  socket.receive(said(3));
  socket.receive(said(4));
  socket.receive({ type: "recovered", channels: { "room:lobby": { offset: 4, epoch: "e1", replayed: 2 } } });
  socket.receive(said(4)); // live duplicate of the replay: dropped
  socket.receive({ type: "said", pos: "not a position" }); // malformed: delivered, not tracked
  assert.deepEqual(of("message").map((m) => m.pos?.offset ?? null), [1, 2, 3, 4, null]);
  assert.equal(of("recovered").length, 1);
  assert.deepEqual(of("gap"), []);
});

test("a resume names the channels that fit in a request line, the highest offsets first", async () => {
  // 200 rooms with long names: their positions take about 20 KB in a URL; a server refuses a
  // request line over 8 KB (HTTP 414), which a browser sees only as a close before open.
  const { client: c } = client({ params: { user_id: "alice" } });
  c.connect();
  await settle();
  let socket = FakeSocket.made[0];
  socket.open();
  const positions = {};
  for (let k = 0; k < 200; k += 1) {
    positions[`room:project-discussion-${String(k).padStart(4, "0")}`] = { offset: k, epoch: "k3j2a9xQ0b7Z" };
  }
  socket.receive(welcome({ positions }));
  assert.ok(sinceParam(c.positions, Infinity, 200).length > 3 * MAX_REQUEST_TARGET / 2);
  socket.end(1012);
  await settle();
  socket = FakeSocket.made[1];
  assert.ok((socket.url.pathname + socket.url.search).length <= MAX_REQUEST_TARGET);
  assert.equal(socket.url.searchParams.get("session_id"), "s1");
  const named = JSON.parse(socket.url.searchParams.get("since"));
  const offsets = Object.values(named).map((p) => p.offset).sort((a, b) => a - b);
  assert.ok(offsets.length > 40 && offsets.length < 200, String(offsets.length));
  assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => 200 - offsets.length + i));
  assert.equal(c.positions.size, 200); // still tracked: the server replays the others from the join
  assert.equal(sinceParam(new Map()), null);
  assert.equal(sinceParam(c.positions, 10), null);
  const capped = Object.values(JSON.parse(sinceParam(c.positions))).map((p) => p.offset);
  assert.equal(capped.length, MAX_SINCE_CHANNELS); // the server's default max_since_channels
  assert.equal(Math.min(...capped), 200 - MAX_SINCE_CHANNELS);
});

/** alice in rooms a, b, c after a welcome with `fields`, then dropped: the resume's socket. */
async function resumeInThreeRooms(fields) {
  const { client: c } = client({ params: { user_id: "alice" } });
  c.connect();
  await settle();
  const socket = FakeSocket.made[0];
  socket.open();
  const positions = { "user:alice": { offset: 1, epoch: "u1" } };
  for (const [room, offset] of [["a", 5], ["b", 9], ["c", 2]]) {
    positions[`room:${room}`] = { offset, epoch: "e1" };
  }
  socket.receive(welcome({ positions, ...fields }));
  socket.end(1006);
  await settle();
  return { resume: FakeSocket.made[1], positions };
}

test("a resume names no more channels than the welcome's max_since_channels", async () => {
  const { resume: socket } = await resumeInThreeRooms({ max_since_channels: 2 });
  assert.deepEqual(Object.keys(JSON.parse(socket.url.searchParams.get("since"))).sort(), [
    "room:a",
    "room:b",
  ]);
});

test("a server offering since_frame gets every channel in the first frame, not the URL", async () => {
  const fields = { max_since_channels: 2, since_frame: true };
  const { resume, positions } = await resumeInThreeRooms(fields);
  let socket = resume;
  assert.equal(socket.url.searchParams.get("since_frame"), "1");
  assert.equal(socket.url.searchParams.get("since"), null);
  socket.open();
  assert.deepEqual(socket.sent, [{ type: "since", channels: positions }]);
  // Channels that fit in the URL go there, as before.
  socket.receive(welcome({ positions: { "user:alice": positions["user:alice"] }, since_frame: true }));
  socket.end(1006);
  await settle();
  socket = FakeSocket.made[2];
  assert.equal(socket.url.searchParams.get("since_frame"), null);
  assert.deepEqual(JSON.parse(socket.url.searchParams.get("since")), {
    "user:alice": { offset: 1, epoch: "u1" },
  });
});

test("a new session where one was asked for reports every tracked channel as lost", async () => {
  const { client: c, of } = client();
  c.connect();
  await settle();
  let socket = FakeSocket.made[0];
  socket.open();
  socket.receive(welcome());
  socket.receive(said(7));
  socket.end(1012);
  await settle();
  socket = FakeSocket.made[1];
  socket.open();
  socket.receive(welcome({ session_id: "s2", resumed: false, positions: { "user:alice": { offset: 0, epoch: "new" } } }));
  assert.deepEqual(of("gap"), [{ type: "gap", channel: "room:lobby", reason: "session_lost", offset: 7, epoch: "e1" }]);
  assert.equal(c.sessionId, "s2");
  assert.deepEqual([...c.positions.keys()], ["user:alice"]);
});

test("the server's gap moves the position; an unannounced new epoch is a gap too", async () => {
  const { client: c, of } = client();
  c.connect();
  await settle();
  const socket = FakeSocket.made[0];
  socket.open();
  socket.receive(welcome());
  socket.receive(said(5));
  socket.receive({ type: "gap", channel: "room:lobby", reason: "out_of_history", offset: 9, epoch: "e1" });
  socket.receive(said(9)); // covered by the gap's position
  socket.receive(said(10));
  socket.receive(said(1, "e2"));
  assert.deepEqual(of("message").map((m) => m.pos.offset), [5, 10, 1]);
  assert.deepEqual(of("gap").map((g) => g.reason), ["out_of_history", "epoch_changed"]);
  assert.deepEqual(c.positions.get("room:lobby"), { offset: 1, epoch: "e2" });
});

test("1008 is retried once with a fresh token from a token function, never with a string", async () => {
  let calls = 0;
  const fresh = client({ token: () => `token-${++calls}` });
  fresh.client.connect();
  await settle();
  FakeSocket.made[0].end(1008, "token expired");
  await settle();
  assert.deepEqual(FakeSocket.made[1].protocols, ["netrun-ws", "bearer.token-2"]);
  FakeSocket.made[1].end(1008, "invalid token");
  await settle();
  assert.equal(FakeSocket.made.length, 2);
  assert.equal(fresh.client.state, "failed");

  const fixed = client({ token: "expired" });
  fixed.client.connect();
  await settle();
  FakeSocket.made[0].end(1008, "token expired");
  await settle();
  assert.equal(FakeSocket.made.length, 1);
  assert.deepEqual(fixed.of("state").at(-1), { code: 1008, reason: "token expired", final: true, state: "failed", previous: "connecting" });
});

test("closes before open count as refusals; terminal codes and 1000 stop", async () => {
  const refused = client({ maxRefusals: 2 });
  refused.client.connect();
  await settle();
  FakeSocket.made[0].end(1006);
  await settle();
  FakeSocket.made[1].end(1006);
  await settle();
  assert.equal(FakeSocket.made.length, 2);
  assert.equal(refused.client.state, "failed");

  for (const [code, state] of [[4000, "failed"], [1002, "failed"], [1000, "closed"]]) {
    const ended = client();
    ended.client.connect();
    await settle();
    FakeSocket.made[0].open();
    FakeSocket.made[0].receive(welcome());
    FakeSocket.made[0].end(code);
    await settle();
    assert.equal(FakeSocket.made.length, 1, `code ${code}`);
    assert.equal(ended.client.state, state, `code ${code}`);
  }
});
