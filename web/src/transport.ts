// The WebSocket to the server's `/ws` (IRCv3 WebSocket, `text.ircv3.net`: one IRC line per
// message, no CR/LF), reconnecting by itself with exponential backoff and jitter.

/** First wait after a lost connection, doubled each failure up to MAX_BACKOFF. */
export const MIN_BACKOFF = 1000;
export const MAX_BACKOFF = 30000;

export interface TransportHandlers {
  open(): void;
  line(text: string): void;
  /** The connection is gone; `retryIn` ms until the next attempt, or null if stopped. */
  closed(retryIn: number | null, reason: string): void;
}

export class Transport {
  private ws: WebSocket | null = null;
  private failures = 0;
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
      const wait = Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** this.failures) * (0.75 + Math.random() * 0.5);
      this.failures++;
      this.handlers.closed(Math.round(wait), event.reason || "connection lost");
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }

  /** The session got as far as registration: the next loss starts from the shortest wait. */
  healthy(): void {
    this.failures = 0;
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
