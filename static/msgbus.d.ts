// Types for msgbus.js / msgbus.mjs, the browser client of msgbus.

/** A message as every transport delivers it (`?format=json`). */
export interface Message {
  /** Increases with every message the server accepts; the resume cursor. */
  id: number;
  channel: string;
  type: string;
  /** The publisher's Basic user or token subject, when there was one. */
  from?: string;
  /** The event name the publisher gave, if any. */
  event?: string;
  /** The body, when it is UTF-8. */
  data?: string;
  /** The body in base64, when it is not UTF-8. */
  data_base64?: string;
}

/** Messages after `after` and before `oldest` are no longer kept by the server. */
export interface Missed {
  after: number;
  oldest: number;
}

/** A refusal that retrying cannot cure: 400, 401, 403, 404, 410 (channel deleted), ... */
export interface Refusal {
  status: number;
  /** The server's one-line reason. */
  reason: string;
}

export type Transport = "sse" | "ws" | "longpoll";

export interface SubscribeOptions {
  /** "auto" (the default) tries EventSource, then WebSocket, then long-poll. */
  transport?: Transport | "auto";
  /** Resume after this id; 0: whatever the channels still keep; omitted: live only. */
  since?: number;
  /** A token for `--jwt-secret` servers (sent as `?token=`, or `Authorization: Bearer` for long-poll). */
  token?: string | null;
  /** false: a connection of this tab's own, not shared with the origin's other tabs. */
  share?: boolean;
  onMissed?: (missed: Missed) => void;
  onState?: (state: "open" | "reconnecting" | "closed") => void;
  /** Called once when the server refuses for good; the subscription is closed by then. */
  onError?: (refusal: Refusal) => void;
}

export interface Subscription {
  close(): void;
  /** The id this subscription has seen up to: pass it as `since` to resume elsewhere. */
  lastId(): number | null;
  /** The transport in use (or being tried). */
  transport?: Transport;
}

export interface PublishOptions {
  /** Content-Type; default `text/plain; charset=utf-8`. */
  type?: string;
  /** The channel key (`Msgbus-Key`): set by the channel's first publish, needed by later ones. */
  key?: string;
  /** The event name subscribers see (SSE `event:`). */
  event?: string;
  /** A token for `--jwt-secret` servers, sent as `Authorization: Bearer`. */
  token?: string | null;
}

export interface PublishAnswer {
  id: number;
  subscribers: number;
}

export interface Msgbus {
  subscribe(
    channels: string | string[],
    onMessage: (message: Message) => void,
    options?: SubscribeOptions,
  ): Subscription;
  /** Rejects with an Error whose `status` is the HTTP status when the server refuses. */
  publish(
    channel: string,
    body: BodyInit,
    options?: string | PublishOptions,
  ): Promise<PublishAnswer>;
  /** Where msgbus is, e.g. "https://push.example" (default: this page's origin); a list (a
   * cluster's nodes) is tried in turn by subscriptions, and publish uses the first. */
  setBase(base: string | string[]): void;
  /** The token used when an option gives none. */
  setToken(token: string | null): void;
}

declare const msgbus: Msgbus;
export default msgbus;
export declare const subscribe: Msgbus["subscribe"];
export declare const publish: Msgbus["publish"];
export declare const setBase: Msgbus["setBase"];
export declare const setToken: Msgbus["setToken"];

declare global {
  /** Set by msgbus.js loaded as a classic script. */
  var msgbus: Msgbus;
}
