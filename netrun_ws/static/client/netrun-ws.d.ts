// Type declarations of netrun-ws.js, the netrun-ws browser client.

export declare const VERSION: string;
export declare const SUBPROTOCOL: "netrun-ws";

/** What the client does after a close code. */
export type CloseAction = "stop" | "fail" | "reauth" | "backoff" | "prompt";
export declare const CLOSE_ACTIONS: Readonly<Record<number, CloseAction>>;
export declare function closeAction(code: number): CloseAction;

/** The welcome's `reconnect` policy (delays in seconds; max_attempts 0 = unlimited). */
export interface ReconnectPolicy {
  initial_delay: number;
  max_delay: number;
  max_attempts: number;
  backoff_multiplier: number;
  jitter: "equal" | "none";
}
export declare function backoffDelay(
  policy: ReconnectPolicy,
  attempt: number,
  random?: () => number,
  action?: CloseAction,
): number;

export declare const HANDLED_TYPES: readonly HandledType[];
/** The message types the client handles itself: never "message" events. */
export type HandledType = "connect" | "ping" | "gap" | "recovered" | "delivery_gap" | "disconnect";
/**
 * The members of the message union `M` that reach "message" listeners (all but the handled
 * types). With `M` from `netrun-ws typescript`, a listener narrows on `message.type`.
 */
export type AppMessage<M extends { type: string }> = M extends { type: HandledType } ? never : M;

/** The longest request target (path and query) a resume request is given (HTTP 414 past ~8 KB). */
export declare const MAX_REQUEST_TARGET: number;
/** The most channels a resume's `since` names (the server's default `max_since_channels`). */
export declare const MAX_SINCE_CHANNELS: number;
/**
 * The `since` query value of a resume request: every channel's position, or the channels with
 * the highest offsets whose positions fit in `budget` URL-encoded characters, at most
 * `maxChannels` of them; null when none.
 */
export declare function sinceParam(
  positions: ReadonlyMap<string, Position>,
  budget?: number,
  maxChannels?: number,
): string | null;

/** Whether every position fits in a `since` of `budget` characters naming at most `maxChannels`. */
export declare function sinceFits(
  positions: ReadonlyMap<string, Position>,
  budget?: number,
  maxChannels?: number,
): boolean;
/** The `{"type": "since", "channels": ...}` frame naming every position (`since_frame=1`). */
export declare function sinceFrame(positions: ReadonlyMap<string, Position>): string;

/** A channel's position: `room:<name>` or `user:<id>`. */
export interface Position {
  offset: number;
  epoch: string;
}

/** Any message the server sends; channel messages carry `pos`. */
export interface ServerMessage {
  type: string;
  pos?: Position & { channel: string };
  [field: string]: unknown;
}

export interface Welcome extends ServerMessage {
  type: "connect";
  connection_id: string;
  user_id: string;
  session_id: string;
  resumed?: boolean;
  rooms?: string[];
  heartbeat?: { interval: number; timeout: number; max_missed: number };
  reconnect?: ReconnectPolicy & { strategy: string };
  positions?: Record<string, Position>;
  /** With positions: the most channels a resume's `since` may name on this server. */
  max_since_channels?: number;
  /** With positions: this server reads a resume's positions from a `since` frame. */
  since_frame?: boolean;
}

export type GapReason =
  | "epoch_changed"
  | "out_of_history"
  | "replay_limit"
  | "session_lost"
  | "delivery_gap";

/** Messages may have been lost: on `channel`, or (delivery_gap) on any channel of this node. */
export interface Gap {
  type: "gap" | "delivery_gap";
  channel: string | null;
  reason: GapReason;
  offset?: number;
  epoch?: string;
  since?: number;
  until?: number;
}

export interface Recovered {
  type: "recovered";
  channels: Record<string, Position & { replayed: number }>;
}

export type ConnectionState =
  | "idle"
  | "connecting"
  | "open"
  | "reconnecting"
  | "closed"
  | "failed";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  code?: number;
  reason?: string;
  /** Seconds until the next attempt (state "reconnecting"). */
  delay?: number;
  attempt?: number;
  /** True when the client will not reconnect by itself. */
  final?: boolean;
  resumed?: boolean;
  sessionId?: string | null;
}

/** The events of a client whose server sends the messages of `M` (see `NetrunClient`). */
export interface ClientEvents<M extends { type: string } = ServerMessage> {
  state: StateChange;
  welcome: Welcome;
  message: AppMessage<M>;
  gap: Gap;
  recovered: Recovered;
  disconnect: ServerMessage;
  error: { error: unknown };
}

export interface ClientOptions {
  /**
   * A JWT, or a function returning one: called before every attempt, so it can refresh; after a
   * 1008 close it gets one more call and one more attempt (a plain string is never retried).
   */
  token?: string | null | (() => string | null | Promise<string | null>);
  /** Extra query parameters (e.g. `{user_id: "alice"}` under anonymous auth). */
  params?: Record<string, string | number>;
  /** Subprotocols offered besides the token; default `["netrun-ws"]`. */
  protocols?: string[];
  /** Resume this session on the first connect. */
  sessionId?: string | null;
  /** The policy used until a welcome brings the server's. */
  reconnect?: Partial<ReconnectPolicy>;
  /** Sockets closed before they opened (1006) in a row that count as a refusal; default 3. */
  maxRefusals?: number;
  /**
   * Probe the server with a plain HTTP request after a socket closed before it opened, so that
   * only a server that answers counts as a refusal (default true). False: every such close counts.
   */
  probe?: boolean;
  /** Seconds without any frame before the connection is dropped; default the welcome's heartbeat.timeout. */
  livenessTimeout?: number;
  /** A WebSocket implementation (default `globalThis.WebSocket`). */
  WebSocket?: typeof WebSocket;
}

/**
 * A connection to a netrun-ws server. Typed end to end with the declarations `netrun-ws
 * typescript` prints: `new NetrunClient<ServerMessage, ClientMessage>(url)` types "message"
 * listeners with the server's messages (discriminated by `type`) and `send` with what the server
 * accepts. Without type arguments, any message object.
 */
export declare class NetrunClient<
  M extends { type: string } = ServerMessage,
  C extends object = object,
> extends EventTarget {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly options: ClientOptions;
  readonly state: ConnectionState;
  readonly sessionId: string | null;
  readonly welcome: Welcome | null;
  readonly positions: Map<string, Position>;
  readonly policy: ReconnectPolicy;
  /** Subscribe to an event; returns a function that unsubscribes. */
  on<K extends keyof ClientEvents<M>>(
    type: K,
    listener: (detail: ClientEvents<M>[K]) => void,
  ): () => void;
  connect(): this;
  send(message: C): boolean;
  close(code?: number, reason?: string): void;
}
