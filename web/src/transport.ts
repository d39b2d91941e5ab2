// The WebSocket to the server's `/ws` (IRCv3 WebSocket, `text.ircv3.net`: one IRC line per
// message, no CR/LF), reconnecting by itself with exponential backoff and jitter.

/** First wait after a lost connection, doubled each failure up to MAX_BACKOFF. */
export const MIN_BACKOFF = 1000;
export const MAX_BACKOFF = 30000;
/** A connection that stayed signed in this long was a good one: the next loss starts again
 * from MIN_BACKOFF. A shorter one (a server that welcomes and then drops the client at once)
 * keeps the waits growing, so that it cannot make the page reconnect every second. */
export const STABLE_AFTER = 30000;

/** The waits between attempts, sans-IO: the time is an argument, the randomness too. */
export class Backoff {
  private failures = 0;
  /** When the session last signed in on the current connection, or null. */
  private upSince: number | null = null;

  constructor(private random: () => number = Math.random) {}

  /** The session signed in (registered) at `now`. */
  healthy(now: number): void {
    this.upSince = now;
  }

  /** The connection was lost or refused at `now`: the ms to wait before the next attempt,
   * MIN_BACKOFF doubled per failure up to MAX_BACKOFF, give or take a quarter (jitter). */
  lost(now: number): number {
    if (this.upSince !== null && now - this.upSince >= STABLE_AFTER) this.failures = 0;
    this.upSince = null;
    const base = Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** Math.min(this.failures, 15));
    this.failures++;
    return Math.round(base * (0.75 + this.random() * 0.5));
  }
}

export interface TransportHandlers {
  open(): void;
  line(text: string): void;
  /** The connection is gone; `retryIn` ms until the next attempt, or null if stopped. */
  closed(retryIn: number | null, reason: string): void;
}

export class Transport {
  private ws: WebSocket | null = null;
  private backoff = new Backoff();
  private timer: number | undefined;
  private stopped = false;

  constructor(private url: string, private handlers: TransportHandlers) {}

  connect(): void {
    this.stopped = false;
    window.clearTimeout(this.timer);
    const ws = new WebSocket(this.url, ["text.ircv3.net"]);
    this.ws = ws;
    ws.onopen = () => this.handlers.open();
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        for (const line of event.data.split(/\r?\n/)) if (line) this.handlers.line(line);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) {
        this.handlers.closed(null, event.reason);
        return;
      }
      const wait = this.backoff.lost(Date.now());
      this.handlers.closed(wait, event.reason || "connection lost");
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }

  /** The session got as far as registration (see STABLE_AFTER). */
  healthy(): void {
    this.backoff.healthy(Date.now());
  }

  /** Drops the connection (one that stalled); it reconnects after the usual wait. */
  drop(reason: string): void {
    this.ws?.close(4000, reason.slice(0, 100));
  }

  send(line: string): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(line);
    return true;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Reconnects now instead of waiting for the timer. */
  retryNow(): void {
    if (!this.ws) this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.ws?.close(1000, "bye");
    this.ws = null;
  }
}

/** The server's `/ws` next to the page: wss: for an https: page. */
export function socketUrl(loc: Location): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}
