// netrun-ws browser client: a dependency-free ES module.
// Connects with a token in the `bearer.<token>` subprotocol, answers the server's pings, follows the
// welcome's reconnect policy, resumes its session and recovers missed channel messages, and reports
// messages, gaps and connection state as events. See docs/clients.md ("Browser client").

export const VERSION = "0.1.0";

/** Subprotocol the server selects; the token travels beside it as `bearer.<token>`. */
export const SUBPROTOCOL = "netrun-ws";

// Used until a welcome brings the server's own policy (same values as the server's defaults).
const DEFAULT_POLICY = Object.freeze({
  initial_delay: 1.0,
  max_delay: 60.0,
  max_attempts: 10,
  backoff_multiplier: 2.0,
  jitter: "equal",
});

// What to do after each close code (the Python client's table, docs/clients.md): "stop" (final,
// state "closed"), "fail" (final, state "failed"), "reauth" (once more with a fresh token from a
// token function, else fail), "backoff" (reconnect by the policy) or "prompt" (the server
// restarts: reconnect soon, then by the policy). Not listed: 4000-4099 fail, others back off.
export const CLOSE_ACTIONS = Object.freeze({
  1000: "stop", // normal close, or "session replaced" by a newer connection of the same session
  1001: "prompt", // going away: the server is shutting down
  1002: "fail", // protocol error: a client bug, retrying repeats it
  1003: "fail", // unsupported data: a client bug
  1005: "backoff", // closed without a status code
  1006: "backoff", // no close frame (network lost); before any open see `maxRefusals`
  1007: "fail", // invalid UTF-8: a client bug
  1008: "reauth", // authentication refused or revoked
  1009: "fail", // a message too big: resending it would fail again
  1010: "fail", // a required extension is missing
  1011: "backoff", // server error
  1012: "prompt", // service restart (drain)
  1013: "backoff", // try again later
  1014: "backoff", // bad gateway
  1015: "fail", // TLS handshake failed
  4100: "backoff", // heartbeat timeout
  4101: "backoff", // slow consumer
  4102: "backoff", // rate limited
});

/** The action for a close code (see CLOSE_ACTIONS). */
export function closeAction(code) {
  if (Object.hasOwn(CLOSE_ACTIONS, code)) return CLOSE_ACTIONS[code];
  if (code >= 4000 && code <= 4099) return "fail";
  return "backoff";
}

/**
 * Seconds before reconnect attempt `attempt` (1-based) under `policy`: the server's schedule,
 * jittered into [delay / 2, delay]; a "prompt" first attempt waits random() * initial_delay / 2.
 */
export function backoffDelay(policy, attempt, random = Math.random, action = "backoff") {
  if (action === "prompt" && attempt <= 1) return (random() * policy.initial_delay) / 2;
  const grown = policy.initial_delay * policy.backoff_multiplier ** (attempt - 1);
  const delay = Math.min(policy.max_delay, grown);
  return policy.jitter === "none" ? delay : delay * (0.5 + 0.5 * random());
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * The longest request target (path and query) a resume request is given: servers refuse a longer
 * request line with HTTP 414 (netrun-ws, through websockets: 8,192 bytes with "GET " and
 * " HTTP/1.1"; nginx's default: 8 KB), which a browser only sees as a close before open.
 */
export const MAX_REQUEST_TARGET = 8000;
/** The most channels a resume's `since` names: the server's default `history.max_since_channels`. */
export const MAX_SINCE_CHANNELS = 100;

const byName = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);
const encodedSince = (entries) =>
  new URLSearchParams({ s: JSON.stringify(Object.fromEntries(entries)) }).toString().length - 2;

/**
 * The `since` query value of a resume request (null when nothing is tracked or nothing fits):
 * every channel's position, or, when that takes more than `budget` characters in the URL or
 * names more than `maxChannels`, the channels with the highest offsets that fit. The server
 * replays a channel left out from where the session joined it, and the client drops what it
 * already has.
 */
export function sinceParam(positions, budget = Infinity, maxChannels = MAX_SINCE_CHANNELS) {
  let chosen = [...positions].sort(byName);
  if (chosen.length === 0) return null;
  if (chosen.length > maxChannels || encodedSince(chosen) > budget) {
    const byOffset = [...chosen].sort((a, b) => b[1].offset - a[1].offset || byName(a, b));
    const empty = encodedSince([]);
    const comma = 3; // "," is %2C in a URL
    let used = empty;
    chosen = [];
    for (const entry of byOffset.slice(0, maxChannels)) {
      const size = encodedSince([entry]) - empty + comma;
      if (used + size > budget) break;
      chosen.push(entry);
      used += size;
    }
    if (chosen.length === 0) return null;
    chosen.sort(byName);
  }
  return JSON.stringify(Object.fromEntries(chosen));
}

/** Whether every tracked position fits in a `since` of `budget` characters and `maxChannels`. */
export function sinceFits(positions, budget = Infinity, maxChannels = MAX_SINCE_CHANNELS) {
  const all = [...positions].sort(byName);
  return all.length <= maxChannels && encodedSince(all) <= budget;
}

/** The `{"type": "since", "channels": ...}` frame naming every tracked position. */
export function sinceFrame(positions) {
  return JSON.stringify({ type: "since", channels: Object.fromEntries([...positions].sort(byName)) });
}

/** `{offset, epoch}` of a well-formed position, else null (a malformed one is ignored). */
function positionOf(value) {
  if (!isObject(value) || !Number.isSafeInteger(value.offset)) return null;
  return typeof value.epoch === "string" ? { offset: value.offset, epoch: value.epoch } : null;
}

export class NetrunClient extends EventTarget {
  /**
   * @param {string} url ws:// or wss:// URL of the server's WebSocket endpoint.
   * @param {import("./netrun-ws").ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = options;
    this.state = "idle";
    this.sessionId = options.sessionId ?? null;
    this.welcome = null;
    /** Last position received per channel: {channel: {offset, epoch}}. */
    this.positions = new Map();
    this._maxSinceChannels = MAX_SINCE_CHANNELS; // the last welcome's max_since_channels
    this._sinceFrameOffered = false; // the last welcome's since_frame: the server reads one
    this._sinceFrame = null; // the since frame the current resume request promised
    this.policy = { ...DEFAULT_POLICY, ...(options.reconnect ?? {}) };
    this._socket = null;
    this._attempt = 0; // consecutive failed attempts since the last welcome
    this._refusals = 0; // consecutive handshakes refused (closed before open, server reachable)
    this._reauthed = false; // a 1008 already got its one retry with a fresh token
    this._resuming = false; // this attempt asked for the session back
    this._draining = false; // this outage began with a drain: refusals are the restart's
    this._timer = null;
    this._watchdog = null;
    this._lastFrame = 0;
    this._onOnline = () => this._online();
  }

  /** Subscribe to an event; returns a function that unsubscribes. The listener gets `event.detail`. */
  on(type, listener) {
    const wrapped = (event) => listener(event.detail);
    this.addEventListener(type, wrapped);
    return () => this.removeEventListener(type, wrapped);
  }

  /** Open the connection (and keep it open until close() or a final close code). */
  connect() {
    if (this.state !== "idle" && this.state !== "closed" && this.state !== "failed") return this;
    this._attempt = 0;
    this._refusals = 0;
    this._reauthed = false;
    if (typeof window !== "undefined") window.addEventListener("online", this._onOnline);
    this._open();
    return this;
  }

  /** Send a message (an object, sent as JSON). Returns false when not connected. */
  send(message) {
    if (this.state !== "open") return false;
    this._socket.send(JSON.stringify(message));
    return true;
  }

  /** Close for good: no reconnect. */
  close(code = 1000, reason = "") {
    this._clearTimers();
    if (typeof window !== "undefined") window.removeEventListener("online", this._onOnline);
    const socket = this._detach();
    if (socket) socket.close(code, reason);
    this._setState("closed", { code, reason, final: true });
  }

  async _open() {
    this._clearTimers();
    if (this.state !== "reconnecting") this._setState("connecting");
    let token = this.options.token;
    try {
      if (typeof token === "function") token = await token();
    } catch (error) {
      this._emit("error", { error });
      this._fail({ code: 1008, reason: "token callback failed", final: true });
      return;
    }
    if (this.state === "closed") return; // close() during the token callback
    const protocols = [...(this.options.protocols ?? [SUBPROTOCOL])];
    if (token) protocols.push(`bearer.${token}`);
    const Impl = this.options.WebSocket ?? globalThis.WebSocket;
    let socket;
    try {
      this._lastUrl = this._connectUrl();
      socket = new Impl(this._lastUrl, protocols);
    } catch (error) {
      this._emit("error", { error });
      this._fail({ code: 0, reason: String(error), final: true });
      return;
    }
    this._socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this._refusals = 0;
      this._seen();
      if (this._sinceFrame !== null) socket.send(this._sinceFrame); // read after the welcome
    };
    socket.onmessage = (event) => this._frame(event.data);
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._detach();
      this._closed(event.code, event.reason, opened);
    };
    socket.onerror = () => {}; // always followed by close
  }

  _connectUrl() {
    const url = new URL(this.url, typeof location === "undefined" ? undefined : location.href);
    for (const [key, value] of Object.entries(this.options.params ?? {})) {
      url.searchParams.set(key, String(value));
    }
    this._resuming = Boolean(this.sessionId);
    this._sinceFrame = null;
    if (this.sessionId) {
      url.searchParams.set("session_id", this.sessionId);
      const room = MAX_REQUEST_TARGET - (url.pathname + url.search).length - "&since=".length;
      if (this._sinceFrameOffered && !sinceFits(this.positions, room, this._maxSinceChannels)) {
        // Every channel in the first frame rather than some in the URL.
        url.searchParams.set("since_frame", "1");
        this._sinceFrame = sinceFrame(this.positions);
      } else {
        const since = sinceParam(this.positions, room, this._maxSinceChannels);
        if (since !== null) url.searchParams.set("since", since);
      }
    }
    return url.href;
  }

  _frame(data) {
    this._seen();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // the server sends JSON only; anything else is not ours to handle
    }
    if (message === null || typeof message !== "object") return;
    switch (message.type) {
      case "connect":
        return this._welcomed(message);
      case "ping":
        return void this._socket?.send('{"type":"pong"}');
      case "gap": {
        const position = positionOf(message);
        if (typeof message.channel === "string" && position) {
          this.positions.set(message.channel, position); // the channel continues from here
        }
        return this._emit("gap", message);
      }
      case "delivery_gap":
        return this._emit("gap", { ...message, channel: null, reason: "delivery_gap" });
      case "recovered":
        for (const [channel, value] of Object.entries(message.channels ?? {})) {
          const position = positionOf(value);
          if (position) this.positions.set(channel, position);
        }
        return this._emit("recovered", message);
      case "disconnect":
        return this._emit("disconnect", message);
    }
    if (!this._track(message)) return; // already received
    this._emit("message", message);
  }

  /** Record a channel message's position; false when it is a duplicate (offset not ahead). */
  _track(message) {
    const position = positionOf(message.pos);
    const channel = message.pos?.channel;
    if (!position || typeof channel !== "string") return true; // no channel: always new
    const { offset, epoch } = position;
    const known = this.positions.get(channel);
    if (known && known.epoch === epoch && offset <= known.offset) return false;
    if (known && known.epoch !== epoch) {
      // The server announces a lost history with a gap first; this guards an unannounced one.
      const gap = { type: "gap", channel, reason: "epoch_changed", offset: offset - 1, epoch };
      this._emit("gap", gap);
    }
    this.positions.set(channel, { offset, epoch });
    return true;
  }

  _welcomed(welcome) {
    const resumed = welcome.resumed === true;
    const positions = isObject(welcome.positions) ? welcome.positions : null;
    if (this._resuming && !resumed) {
      // The server no longer knows the session (it expired, or a memory store restarted): what
      // its channels carried meanwhile may be lost, and the app must rejoin its rooms.
      for (const [channel, known] of this.positions) {
        this._emit("gap", { type: "gap", channel, reason: "session_lost", ...known });
      }
      this.positions.clear();
    }
    if (resumed) {
      // Recovery continues from what was received; only channels the session left are dropped.
      if (positions) for (const channel of [...this.positions.keys()]) {
        if (!Object.hasOwn(positions, channel)) this.positions.delete(channel);
      }
    } else if (positions) {
      // A new session starts from the channels' current tops.
      for (const [channel, value] of Object.entries(positions)) {
        const position = positionOf(value);
        if (position) this.positions.set(channel, position);
      }
    }
    this.sessionId = welcome.session_id ?? this.sessionId;
    if (Number.isSafeInteger(welcome.max_since_channels) && welcome.max_since_channels > 0) {
      this._maxSinceChannels = welcome.max_since_channels;
    }
    this._sinceFrameOffered = welcome.since_frame === true;
    this.welcome = welcome;
    if (welcome.reconnect) this.policy = { ...this.policy, ...welcome.reconnect };
    this._attempt = 0;
    this._reauthed = false;
    this._draining = false;
    this._startWatchdog(welcome.heartbeat);
    this._setState("open", { resumed, sessionId: this.sessionId });
    this._emit("welcome", welcome);
  }

  async _closed(code, reason, opened) {
    this._clearTimers();
    let action = closeAction(code);
    if (action === "prompt") this._draining = true;
    if (!opened && code === 1006 && !this._draining && (await this._refused())) {
      // A browser shows a refused handshake (HTTP 4xx/5xx) as 1006 before open, like a network
      // error; a server that answers plain HTTP refused it. `maxRefusals` of them in a row: fail.
      // After a drain the draining server itself refuses (503) for a while: max_attempts bounds.
      this._refusals += 1;
      if (this._refusals >= (this.options.maxRefusals ?? 3)) action = "fail";
    }
    if (this.state === "closed") return; // close() while the probe ran
    if (action === "reauth") {
      // A refused token is retried once, and only with a new one from the token function.
      action = typeof this.options.token === "function" && !this._reauthed ? "prompt" : "fail";
      this._reauthed = true;
    }
    if (action === "stop" || action === "fail") {
      const state = action === "stop" ? "closed" : "failed";
      return this._fail({ code, reason, final: true }, state);
    }
    this._attempt += 1;
    const max = this.policy.max_attempts;
    if (max > 0 && this._attempt > max) {
      return this._fail({ code, reason, final: true, attempts: this._attempt - 1 });
    }
    const delay = backoffDelay(this.policy, this._attempt, Math.random, action);
    this._setState("reconnecting", { code, reason, delay, attempt: this._attempt });
    this._timer = setTimeout(() => this._open(), delay * 1000);
  }

  /** Whether the server answers plain HTTP: then a socket closed before open was refused. */
  async _refused() {
    if (this.options.probe === false) return true;
    const url = new URL(this._lastUrl);
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    url.search = ""; // nothing of the query (user id, session) goes into the probe
    try {
      await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit" });
      return true;
    } catch {
      return false; // offline, or nothing listens: a network error, retried by the policy
    }
  }

  _fail(detail, state = "failed") {
    this._clearTimers();
    if (typeof window !== "undefined") window.removeEventListener("online", this._onOnline);
    this._setState(state, detail);
  }

  _online() {
    // Back online while waiting to reconnect: no point in waiting out the backoff.
    if (this.state === "reconnecting" && this._timer !== null) this._open();
  }

  _seen() {
    this._lastFrame = Date.now();
  }

  _startWatchdog(heartbeat) {
    // Without a frame for the server's heartbeat timeout the network is gone, even if the
    // browser has not noticed: drop the socket and reconnect instead of waiting for TCP.
    const timeout = this.options.livenessTimeout ?? heartbeat?.timeout;
    if (!timeout) return;
    const every = Math.max(250, (timeout * 1000) / 4);
    this._watchdog = setInterval(() => {
      if (Date.now() - this._lastFrame > timeout * 1000) {
        const socket = this._detach();
        if (socket) socket.close(4000, "no frame from the server");
        this._closed(4100, "no frame from the server", true);
      }
    }, every);
  }

  _detach() {
    const socket = this._socket;
    this._socket = null;
    if (socket) socket.onopen = socket.onmessage = socket.onclose = null;
    return socket;
  }

  _clearTimers() {
    clearTimeout(this._timer);
    clearInterval(this._watchdog);
    this._timer = this._watchdog = null;
  }

  _setState(state, detail = {}) {
    const previous = this.state;
    this.state = state;
    this._emit("state", { ...detail, state, previous });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Message types the client handles itself; they are not emitted as "message" events. */
export const HANDLED_TYPES = Object.freeze([
  "connect",
  "ping",
  "gap",
  "recovered",
  "delivery_gap",
  "disconnect",
]);
