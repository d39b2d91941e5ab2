// The IRC session, sans I/O: lines in (`receive`), lines out (`outbox`, drained by the
// transport), state for the UI to render and events for it to act on. Time is always an
// argument, so the unit tests drive it without clocks, sockets or a DOM.

import { build, fold, isRoom, parse, type Message } from "./irc";
import { shown, stripFormatting } from "./format";
import { multilineGroups, multilineLimits, multilineMessage, type MultilineLimits } from "./multiline";
import { randomNonce, SaslLogin } from "./sasl";
import type { ScramKeys } from "./scram";

export type LineKind =
  | "msg" | "action" | "notice" | "join" | "part" | "quit" | "kick" | "nick" | "topic"
  | "mode" | "info" | "error" | "e2e" | "away";

export interface Line {
  /** The server's msgid, or a local id ("l…") for lines the server did not number. */
  id: string;
  /** The server's msgid, "" if it gave none: what history requests start from. (Not told
   * from `id` by its first letter: another server's msgids may well begin with an "l".) */
  msgid: string;
  /** Milliseconds since the epoch: the server's time when it gave one. */
  time: number;
  kind: LineKind;
  nick: string;
  text: string;
  /** Sent by this user. */
  self: boolean;
  /** Mentions this user's nick. */
  mention: boolean;
}

export interface Member {
  nick: string;
  /** Prefix characters held, highest first (multi-prefix): "@+", "+", "". */
  prefixes: string;
  away: boolean;
  account: string;
  /** The real name (extended-join, SETNAME), shown as the member's tooltip. */
  realname: string;
}

export interface Buffer {
  name: string;
  kind: "server" | "room" | "query";
  lines: Line[];
  members: Map<string, Member>;
  topic: string;
  unread: number;
  mentions: number;
  joined: boolean;
  /** Nick → when its typing notice expires (ms). */
  typing: Map<string, number>;
  /** No older history on the server. */
  historyDone: boolean;
  historyLoading: boolean;
  /** The newest msgid held when the connection was lost: the gap is fetched from there. */
  resumeFrom: string;
  /** History was fetched once since the page opened: later fetches ask for what came after. */
  synced: boolean;
  /** The kind of history request in flight: "latest", "before", "after" or "". */
  historyAsked: string;
  /** E2E devices of a private conversation's account: null unknown, 0 none. */
  e2eDevices: number | null;
  /** The user agreed to send in clear to this E2E contact. */
  clearConfirmed: boolean;
  /** A WHOIS for the contact's account is in flight. */
  checking: boolean;
  /** The contact's account, if known (query buffers). */
  account: string;
}

export interface Login {
  nick: string;
  /** "guest", "login" (SASL PLAIN) or "register" (REGISTER after connecting). */
  mode: "guest" | "login" | "register";
  account: string;
  /** "" when only saved SCRAM keys are at hand ("remember me"). */
  password: string;
  /** SCRAM keys saved by "remember me", used instead of the password when they fit. */
  scram?: ScramKeys;
}

export interface RoomListing { name: string; users: number; topic: string }

export type SessionEvent =
  | { type: "notify"; buffer: string; title: string; body: string }
  | { type: "registered" }
  /** `scram`: the keys of the SCRAM login, what "remember me" keeps (null after PLAIN). */
  | { type: "loggedIn"; account: string; scram: ScramKeys | null }
  | { type: "authFailed"; text: string }
  | { type: "listDone" }
  | { type: "e2eKnown"; buffer: string }
  | { type: "joined"; buffer: string }
  /** Registration did not finish in time (a server that never answers SASL, say): the
   * connection should be dropped, which reconnects with backoff. */
  | { type: "stalled"; text: string };

/** Capabilities the client asks for when the server offers them. */
export const WANTED_CAPS = [
  "message-tags", "server-time", "echo-message", "labeled-response", "batch", "multi-prefix",
  "away-notify", "account-tag", "extended-join", "draft/chathistory", "draft/event-playback",
  "sasl", "setname", "draft/account-registration", "cap-notify", "account-notify", "draft/multiline",
];

/** How many messages a page of history holds. */
export const HISTORY_PAGE = 50;
/** How long a typing notice lasts without a refresh (the spec's 6 s). */
export const TYPING_TTL = 6000;
/** Lines kept per buffer; the oldest go beyond this (scrolling back fetches them again). */
export const MAX_LINES = 2000;
/** Time from the first line sent to the server's welcome (001), SASL included; past it the
 * session asks to be reconnected (`stalled`). */
export const REGISTER_TIMEOUT = 30000;
/** Longest line taken from the server (a chinwag line is at most 8703 bytes); longer ones are
 * dropped unread. */
export const MAX_INCOMING = 65536;
/** Batches open at once; a server that opens more gets them refused (their lines are then
 * read as lines of no batch). */
export const MAX_OPEN_BATCHES = 16;
/** Lines one batch holds; more are dropped (a history page is 50 messages, a multiline one at
 * most the server's max-lines). */
export const MAX_BATCH_LINES = 1000;
/** Private conversations the client opens for others; past it, a message from someone new
 * shows in the server window instead of adding to the sidebar (a flood of clones cannot grow
 * it, nor memory, without bound). The user can still open more. */
export const MAX_QUERIES = 50;
/** Longest text one send may hold (characters): a longer paste is refused with a word,
 * rather than sent as so many lines or batches that the server drops the client for flooding. */
export const MAX_MESSAGE = 16384;
/** Rooms a LIST answer may fill the room list with. */
export const MAX_LISTED = 2000;
/** Encrypted messages remembered so that each shows once. */
const MAX_E2E_SEEN = 1000;

const SERVER = "*server*";

function newBuffer(name: string, kind: Buffer["kind"]): Buffer {
  return {
    name, kind, lines: [], members: new Map(), topic: "", unread: 0, mentions: 0, joined: false,
    typing: new Map(), historyDone: false, historyLoading: false, historyAsked: "", synced: false, resumeFrom: "", e2eDevices: null,
    clearConfirmed: false, account: "", checking: false,
  };
}

export interface Batch {
  type: string;
  target: string;
  lines: Message[];
  /** The opening `BATCH +ref` line (its source and tags are a multiline message's). */
  start: Message;
  /** The batch this one is inside (a multiline message in a history page), if any. */
  parent: string;
}

let localId = 0;

export class Session {
  outbox: string[] = [];
  events: SessionEvent[] = [];
  buffers = new Map<string, Buffer>();
  nick: string;
  account = "";
  away = false;
  registered = false;
  caps = new Set<string>();
  isupport = new Map<string, string>();
  networkName = "chinwag";
  /** Which buffer the user is looking at (folded name): unread counts stop there. */
  active = SERVER;
  rooms: RoomListing[] = [];
  listing = false;
  private offered = new Map<string, string>();
  private batches = new Map<string, Batch>();
  private prefixModes = "ov";
  private prefixChars = "@+";
  private saslSent = false;
  /** This connection's SASL exchange (logins only): it answers only what it asked for. */
  private sasl: SaslLogin | null = null;
  /** When this connection's registration began (null while disconnected). */
  private startedAt: number | null = null;
  private stallReported = false;
  private batchSeq = 0;
  private whoisAccount = new Map<string, string>();
  private e2eSeen = new Set<string>();
  private nickTries = 0;
  /** Registered at least once: a taken nick is then our own ghost, not a choice to make again. */
  private everRegistered = false;

  constructor(public login: Login, private nonce: () => string = randomNonce) {
    this.nick = login.nick;
    this.buffers.set(SERVER, newBuffer(SERVER, "server"));
  }

  /** The lines that open a connection (on every connect, reconnects too). */
  start(now: number = Date.now()): void {
    this.registered = false;
    this.saslSent = false;
    this.sasl = null;
    this.startedAt = now;
    this.stallReported = false;
    this.caps.clear();
    this.offered.clear();
    this.batches.clear();
    this.nickTries = 0;
    for (const b of this.buffers.values()) {
      if (b.synced) b.resumeFrom = [...b.lines].reverse().find((l) => l.msgid)?.msgid ?? "";
      b.members.clear();
      b.typing.clear();
      b.historyLoading = false;
    }
    this.send("CAP", ["LS", "302"]);
    this.send("NICK", [this.nick]);
    this.send("USER", [this.nick.toLowerCase().replace(/[^a-z0-9]/g, "") || "web", "0", "*", "chinwag web client"]);
  }

  /** The connection is gone: nothing is awaited from it any more. */
  disconnected(): void {
    this.registered = false;
    this.startedAt = null;
    this.sasl = null;
    for (const b of this.buffers.values()) if (b.kind === "room") b.joined = false;
  }

  send(command: string, params: string[] = [], tags: Record<string, string> = {}): void {
    this.outbox.push(build(command, params, tags));
  }

  buffer(name: string): Buffer | undefined {
    return this.buffers.get(fold(name));
  }

  serverBuffer(): Buffer {
    return this.buffers.get(SERVER)!;
  }

  /** The buffer for `name`, made if missing. */
  ensure(name: string): Buffer {
    const key = fold(name);
    let b = this.buffers.get(key);
    if (!b) {
      b = newBuffer(name, isRoom(name) ? "room" : "query");
      this.buffers.set(key, b);
    }
    return b;
  }

  /** Closes a buffer: leaves a room, forgets a conversation. */
  close(name: string): void {
    const b = this.buffer(name);
    if (!b || b.kind === "server") return;
    if (b.kind === "room" && b.joined) this.send("PART", [b.name]);
    this.buffers.delete(fold(name));
    if (this.active === fold(name)) this.active = SERVER;
  }

  setActive(name: string): void {
    const b = this.buffer(name) ?? this.serverBuffer();
    this.active = fold(b.name);
    b.unread = 0;
    b.mentions = 0;
  }

  // ----- what the user does -----

  /**
   * Sends what the user wrote. Several lines go as one draft/multiline message when the
   * server takes them (in as few batches as its max-lines and max-bytes allow), else as one
   * message per line that is not blank.
   */
  say(target: string, text: string): void {
    if (text.length > MAX_MESSAGE) {
      this.note(target, `That message is too long to send (${text.length} characters, at most ${MAX_MESSAGE}).`, "error");
      return;
    }
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    while (lines.length && lines[0].trim() === "") lines.shift();
    while (lines.length && lines[lines.length - 1].trim() === "") lines.pop();
    const limits = this.multilineLimits();
    const echo = this.caps.has("echo-message");
    if (limits && lines.length > 1) {
      for (const group of multilineGroups(target, lines, limits)) {
        const ref = `ml${++this.batchSeq}`;
        this.send("BATCH", [`+${ref}`, "draft/multiline", target]);
        for (const [part, concat] of group) {
          this.send("PRIVMSG", [target, part], concat ? { batch: ref, "draft/multiline-concat": "" } : { batch: ref });
        }
        this.send("BATCH", [`-${ref}`]);
        if (!echo) {
          const joined = group.map(([part, concat], i) => (i > 0 && !concat ? "\n" : "") + part).join("");
          this.addLine(this.ensure(target), this.line("msg", this.nick, joined, Date.now(), "", true));
        }
      }
      return;
    }
    for (const part of lines) {
      if (part.length === 0) continue;
      this.send("PRIVMSG", [target, part]);
      if (!echo) this.addLine(this.ensure(target), this.line("msg", this.nick, part, Date.now(), "", true));
    }
  }

  /** draft/multiline's limits if both it and batch were granted, else null. */
  multilineLimits(): MultilineLimits | null {
    if (!this.caps.has("draft/multiline") || !this.caps.has("batch")) return null;
    return multilineLimits(this.offered.get("draft/multiline") ?? "");
  }

  action(target: string, text: string): void {
    this.send("PRIVMSG", [target, `\x01ACTION ${text}\x01`]);
  }

  typing(target: string, state: "active" | "paused" | "done"): void {
    if (this.caps.has("message-tags")) this.send("TAGMSG", [target], { "+typing": state });
  }

  join(room: string): void {
    this.send("JOIN", [room]);
  }

  /** The last page of a buffer's history, or what was missed since its newest line. */
  fetchLatest(name: string): void {
    const b = this.buffer(name);
    if (!b || !this.caps.has("draft/chathistory") || b.historyLoading) return;
    // After a reconnect, from the newest line held before it (the JOIN that came with the
    // reconnect is newer than the gap); otherwise from the newest line held.
    const newest = b.resumeFrom || (b.synced ? [...b.lines].reverse().find((l) => l.msgid)?.msgid : "");
    b.resumeFrom = "";
    b.historyLoading = true;
    b.historyAsked = newest ? "after" : "latest";
    if (newest) this.send("CHATHISTORY", ["AFTER", b.name, `msgid=${newest}`, String(this.historyLimit())]);
    else this.send("CHATHISTORY", ["LATEST", b.name, "*", String(this.historyLimit())]);
  }

  /** The page before the oldest line held (scrolling back). */
  fetchBefore(name: string): boolean {
    const b = this.buffer(name);
    if (!b || b.historyDone || b.historyLoading || !this.caps.has("draft/chathistory")) return false;
    const oldest = b.lines.find((l) => l.msgid);
    if (!oldest) return false;
    b.historyLoading = true;
    b.historyAsked = "before";
    this.send("CHATHISTORY", ["BEFORE", b.name, `msgid=${oldest.msgid}`, String(this.historyLimit())]);
    return true;
  }

  private historyLimit(): number {
    const max = Number(this.isupport.get("CHATHISTORY") ?? HISTORY_PAGE);
    return max > 0 ? Math.min(max, HISTORY_PAGE) : HISTORY_PAGE;
  }

  list(): void {
    this.rooms = [];
    this.listing = true;
    this.send("LIST");
  }

  /** Asks whether a private conversation's contact has E2E devices (needs a login). */
  checkE2e(nick: string): void {
    const b = this.ensure(nick);
    if (!this.account) {
      b.e2eDevices = 0;
      return;
    }
    if (b.account) this.send("E2E", ["DEVICES", b.account]);
    else {
      b.checking = true;
      this.send("WHOIS", [nick]);
    }
  }

  /** Expires typing notices and notices a registration that stalled; returns whether
   * anything changed. */
  tick(now: number): boolean {
    let changed = false;
    if (!this.registered && this.startedAt !== null && !this.stallReported && now - this.startedAt >= REGISTER_TIMEOUT) {
      this.stallReported = true;
      const text = this.saslSent ? "The server did not answer the login" : "The server did not finish signing in";
      this.info(this.serverBuffer(), "error", `${text}: connecting again.`, now);
      this.events.push({ type: "stalled", text });
      changed = true;
    }
    for (const b of this.buffers.values()) {
      for (const [nick, until] of b.typing) {
        if (until <= now) {
          b.typing.delete(nick);
          changed = true;
        }
      }
    }
    return changed;
  }

  // ----- what the server says -----

  receive(raw: string, now: number = Date.now()): void {
    if (raw.length > MAX_INCOMING) return;
    const msg = parse(raw);
    if (!msg) return;
    try {
      if (msg.command === "BATCH") this.onBatch(msg, now);
      else this.deliver(msg, msg.tags["batch"], now);
    } catch {
      // A line the client cannot make sense of is dropped; the next one is read as usual (the
      // handlers check what they read, this is the last guard).
    }
  }

  /** A message into the open batch `ref` if there is one (bounded), else handled now. */
  private deliver(msg: Message, ref: string | undefined, now: number): void {
    const batch = ref !== undefined ? this.batches.get(ref) : undefined;
    if (!batch) this.handle(msg, now);
    else if (batch.lines.length < MAX_BATCH_LINES) batch.lines.push(msg);
  }

  private handle(msg: Message, now: number): void {
    const p = msg.params;
    const time = msg.tags["time"] ? Date.parse(msg.tags["time"]) || now : now;
    switch (msg.command) {
      case "PING":
        this.send("PONG", p.slice(0, 1));
        break;
      case "CAP":
        this.onCap(p);
        break;
      case "AUTHENTICATE": {
        const answer = this.sasl?.answer(p[0] ?? "");
        if (!answer) break;
        if ("send" in answer) {
          for (const chunk of answer.send) this.send("AUTHENTICATE", [chunk]);
        } else {
          this.send("AUTHENTICATE", ["*"]);
          this.events.push({ type: "authFailed", text: `Login failed: ${answer.fail}` });
          this.info(this.serverBuffer(), "error", `Login failed: ${answer.fail}`, time);
        }
        break;
      }
      case "900":
        this.account = p[2] ?? "";
        this.events.push({ type: "loggedIn", account: this.account, scram: this.sasl?.keys ?? null });
        break;
      case "901":
        this.account = "";
        break;
      case "903":
        this.send("CAP", ["END"]);
        break;
      case "902": case "904": case "905": case "906": {
        // A SCRAM login that failed before its proof is tried again with PLAIN.
        const retry = msg.command === "904" ? this.sasl?.failed() : null;
        if (retry) {
          this.send("AUTHENTICATE", [retry]);
          break;
        }
        this.sasl = null;
        this.events.push({ type: "authFailed", text: p[p.length - 1] ?? "login failed" });
        this.info(this.serverBuffer(), "error", `Login failed: ${p[p.length - 1] ?? ""}`, time);
        break;
      }
      case "001":
        this.registered = true;
        this.everRegistered = true;
        this.nick = p[0] ?? this.nick;
        this.info(this.serverBuffer(), "info", p[1] ?? "Welcome", time);
        if (this.login.mode === "register" && !this.account) {
          this.send("REGISTER", ["*", "*", this.login.password]);
        }
        for (const b of this.buffers.values()) if (b.kind === "room") this.join(b.name);
        for (const b of this.buffers.values()) if (b.kind === "query" && b.lines.length) this.fetchLatest(b.name);
        this.events.push({ type: "registered" });
        break;
      case "005":
        for (const token of p.slice(1, -1)) {
          const eq = token.indexOf("=");
          const [k, v] = eq < 0 ? [token, ""] : [token.slice(0, eq), token.slice(eq + 1)];
          this.isupport.set(k.toUpperCase(), v);
          if (k === "NETWORK" && v) this.networkName = v;
          if (k === "PREFIX") {
            const m = /^\(([^)]*)\)(.*)$/.exec(v);
            if (m) [this.prefixModes, this.prefixChars] = [m[1], m[2]];
          }
        }
        break;
      case "REGISTER":
        if (p[0] === "SUCCESS") this.info(this.serverBuffer(), "info", `Account ${p[1]} registered.`, time);
        break;
      case "433":
        // On the first connection a guest or a new account chose this nick: say it is taken
        // (the form shows it) rather than quietly becoming nick_. On a reconnect the nick may
        // still be held by our old connection, so a variant keeps the session going.
        if (!this.registered && !this.everRegistered && this.login.mode !== "login") {
          this.events.push({ type: "authFailed", text: `The nick ${p[1] ?? this.nick} is taken: choose another.` });
          this.send("QUIT", ["nick taken"]);
        } else if (!this.registered && this.nickTries++ < 5) {
          this.nick = `${this.nick}_`;
          this.send("NICK", [this.nick]);
        } else this.info(this.activeBuffer(), "error", `${p[1]}: that nick is taken`, time);
        break;
      case "BATCH":
        this.onBatch(msg, now);
        break;
      case "PRIVMSG": case "NOTICE":
        this.onMessage(msg, time, false);
        break;
      case "TAGMSG":
        this.onTagmsg(msg, now);
        break;
      case "JOIN": case "PART": case "QUIT": case "KICK": case "NICK": case "TOPIC": case "MODE":
        this.onMembership(msg, time, false);
        break;
      case "AWAY": {
        for (const b of this.buffers.values()) {
          const m = b.members.get(fold(msg.nick));
          if (m) m.away = p.length > 0 && p[0] !== "";
        }
        break;
      }
      case "SETNAME":
        for (const b of this.buffers.values()) {
          const m = b.members.get(fold(msg.nick));
          if (m) m.realname = p[0] ?? "";
        }
        break;
      case "ACCOUNT":
        for (const b of this.buffers.values()) {
          const m = b.members.get(fold(msg.nick));
          if (m) m.account = p[0] === "*" ? "" : (p[0] ?? "");
        }
        break;
      case "305": this.away = false; this.info(this.activeBuffer(), "away", "You are back.", time); break;
      case "306": this.away = true; this.info(this.activeBuffer(), "away", "You are marked as away.", time); break;
      case "301": this.info(this.buffer(p[1] ?? "") ?? this.activeBuffer(), "away", `${p[1] ?? ""} is away: ${p[2] ?? ""}`, time); break;
      // Topics and names only for rooms the client has open (they follow its JOIN).
      case "331": case "332": {
        const b = this.buffer(p[1] ?? "");
        if (b && b.kind === "room") b.topic = msg.command === "332" ? (p[2] ?? "") : "";
        break;
      }
      case "353": {
        const b = this.buffer(p[2] ?? "");
        if (!b || b.kind !== "room") break;
        for (const item of (p[3] ?? "").split(" ")) {
          if (!item) continue;
          let i = 0;
          while (i < item.length && this.prefixChars.includes(item[i])) i++;
          const nick = item.slice(i).split("!")[0];
          if (!nick) continue;
          b.members.set(fold(nick), { nick, prefixes: item.slice(0, i), away: false, account: "", realname: "" });
        }
        break;
      }
      case "321": this.rooms = []; break;
      case "322":
        if (p[1] && isRoom(p[1]) && this.rooms.length < MAX_LISTED) this.rooms.push({ name: p[1], users: Number(p[2]) || 0, topic: p[3] ?? "" });
        break;
      case "323": this.listing = false; this.events.push({ type: "listDone" }); break;
      case "330":
        if (this.whoisAccount.size >= 100) this.whoisAccount.clear();
        if (p[1] && p[2]) this.whoisAccount.set(fold(p[1]), p[2]);
        break;
      case "318": {
        const nick = p[1] ?? "";
        const account = this.whoisAccount.get(fold(nick)) ?? "";
        this.whoisAccount.delete(fold(nick));
        const b = this.buffer(nick);
        if (b && b.kind === "query" && b.checking) {
          b.checking = false;
          b.account = account;
          if (account && this.account) this.send("E2E", ["DEVICES", account]);
          else {
            b.e2eDevices = 0;
            this.events.push({ type: "e2eKnown", buffer: b.name });
          }
        }
        break;
      }
      case "E2E":
        if (p[0] === "DEVICES" && p.length >= 3 && p[1]) {
          for (const b of this.buffers.values()) {
            if (b.kind === "query" && b.account && fold(b.account) === fold(p[1])) {
              b.e2eDevices = Number(p[2]) || 0;
              this.events.push({ type: "e2eKnown", buffer: b.name });
            }
          }
        }
        break;
      case "FAIL": {
        if (p[0] === "CHATHISTORY") {
          for (const b of this.buffers.values()) b.historyLoading = false;
        }
        if (p[0] === "E2E") {
          for (const b of this.buffers.values()) {
            if (b.kind === "query" && b.e2eDevices === null) {
              b.e2eDevices = 0;
              this.events.push({ type: "e2eKnown", buffer: b.name });
            }
          }
          break;
        }
        this.info(this.activeBuffer(), "error", `${p[p.length - 1] ?? ""}`, time);
        if (p[0] === "REGISTER") this.events.push({ type: "authFailed", text: p[p.length - 1] ?? "" });
        break;
      }
      case "ERROR":
        this.info(this.serverBuffer(), "error", p[0] ?? "The server closed the connection", time);
        break;
      default:
        if (/^[45]\d\d$/.test(msg.command)) {
          // An error reply: its text, after the nick and any target it names.
          const what = p.slice(1, -1).filter((x) => x !== "*").join(" ");
          const target = p.length > 2 ? this.buffer(p[1]) : undefined;
          this.info(target ?? this.activeBuffer(), "error", `${what ? `${what}: ` : ""}${p[p.length - 1] ?? ""}`, time);
          if (msg.command === "403" || msg.command === "474" || msg.command === "473" || msg.command === "475") {
            const b = this.buffer(p[1] ?? "");
            if (b && !b.joined && b.lines.length <= 1) this.buffers.delete(fold(b.name));
          }
        } else if (/^(00[2-4]|25[1-5]|26[56]|37[256])$/.test(msg.command)) {
          this.info(this.serverBuffer(), "info", p.slice(1).join(" "), time);
        }
    }
  }

  private activeBuffer(): Buffer {
    return this.buffers.get(this.active) ?? this.serverBuffer();
  }

  private onCap(p: string[]): void {
    const sub = (p[1] ?? "").toUpperCase();
    const more = p[2] === "*";
    const list = (more ? p[3] : p[2]) ?? "";
    if (sub === "LS" || sub === "NEW") {
      for (const item of list.split(" ")) {
        const eq = item.indexOf("=");
        if (item) this.offered.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? "" : item.slice(eq + 1));
      }
      if (more) return;
      const want = WANTED_CAPS.filter((c) => this.offered.has(c) && !this.caps.has(c));
      if (this.login.mode !== "login") want.splice(want.indexOf("sasl") >>> 0, want.includes("sasl") ? 1 : 0);
      if (want.length) this.send("CAP", ["REQ", want.join(" ")]);
      else if (sub === "LS") this.capEnd();
    } else if (sub === "ACK") {
      for (const c of list.split(" ")) {
        if (!c) continue;
        if (c.startsWith("-")) this.caps.delete(c.slice(1));
        else this.caps.add(c);
      }
      if (!this.registered) this.capEnd();
    } else if (sub === "NAK") {
      if (!this.registered) this.capEnd();
    } else if (sub === "DEL") {
      for (const c of list.split(" ")) {
        this.caps.delete(c);
        this.offered.delete(c);
      }
    }
  }

  private capEnd(): void {
    if (this.login.mode === "login" && this.caps.has("sasl") && !this.saslSent) {
      this.sasl = new SaslLogin(this.login, this.nonce);
      const mechanism = this.sasl.begin(this.offered.get("sasl") ?? "");
      if (mechanism) {
        this.saslSent = true;
        this.send("AUTHENTICATE", [mechanism]);
        return;
      }
      this.events.push({ type: "authFailed", text: "The server offers no login this client can use" });
    }
    if (this.login.mode === "login" && !this.caps.has("sasl")) {
      this.events.push({ type: "authFailed", text: "The server does not offer SASL logins" });
    }
    if (!this.saslSent) this.send("CAP", ["END"]);
  }

  private onBatch(msg: Message, now: number): void {
    const ref = msg.params[0] ?? "";
    const name = ref.slice(1);
    if (ref.startsWith("+")) {
      if (!name || (this.batches.size >= MAX_OPEN_BATCHES && !this.batches.has(name))) return;
      const parent = msg.tags["batch"] ?? "";
      this.batches.set(name, { type: msg.params[1] ?? "", target: msg.params[2] ?? "", lines: [], start: msg, parent });
      return;
    }
    const batch = this.batches.get(name);
    this.batches.delete(name);
    if (!batch) return;
    // What a batch held goes where the batch itself was: into the batch around it (a
    // multiline message in a page of history) or handled now.
    if (batch.type === "chathistory") {
      this.onHistory(batch, now);
    } else if (batch.type === "draft/multiline") {
      const joined = multilineMessage(batch);
      if (joined) this.deliver(joined, batch.parent || undefined, now);
    } else {
      for (const m of batch.lines) this.deliver(m, batch.parent || undefined, now);
    }
  }

  private onHistory(batch: Batch, now: number): void {
    // Only an answer to a request: a page nobody asked for neither opens a conversation nor
    // adds to one.
    const b = this.buffer(batch.target);
    if (!b || !b.historyAsked) return;
    const asked = b.historyAsked;
    b.historyLoading = false;
    b.historyAsked = "";
    b.synced = true;
    const got: Line[] = [];
    for (const m of batch.lines) {
      // A line of another conversation has no place in this one's history.
      if (!this.belongs(m, b)) continue;
      const time = m.tags["time"] ? Date.parse(m.tags["time"]) || now : now;
      const line = m.command === "PRIVMSG" || m.command === "NOTICE"
        ? this.messageLine(m, time)
        : this.membershipLine(m, time);
      if (line) got.push(line);
    }
    // A short page going back means the start of the history has been reached.
    if ((asked === "before" || asked === "latest") && batch.lines.length < this.historyLimit()) b.historyDone = true;
    const known = new Set(b.lines.map((l) => l.msgid).filter((id) => id));
    const fresh = got.filter((l) => !l.msgid || !known.has(l.msgid));
    b.lines = [...b.lines, ...fresh].sort((x, y) => x.time - y.time);
    if (b.lines.length > MAX_LINES) {
      // Scrolling back keeps the oldest; a gap fill keeps the newest.
      b.lines = asked === "before" ? b.lines.slice(0, MAX_LINES) : b.lines.slice(-MAX_LINES);
      if (asked !== "before") b.historyDone = false;
    }
    // A gap fill that came back full may have more after it.
    if (asked === "after" && batch.lines.length >= this.historyLimit()) this.fetchLatest(b.name);
  }

  /** Whether a line of a history page belongs to the conversation `b`. */
  private belongs(m: Message, b: Buffer): boolean {
    const key = fold(b.name);
    const target = fold(m.params[0] ?? "");
    const from = fold(m.nick);
    if (b.kind === "room") {
      // QUIT and NICK name no room: the server gave them as this room's.
      return m.command === "QUIT" || m.command === "NICK" || target === key;
    }
    if (m.command === "PRIVMSG" || m.command === "NOTICE") {
      return target === key || (from === key && !isRoom(m.params[0] ?? ""));
    }
    return from === key && (m.command === "QUIT" || m.command === "NICK");
  }

  private line(kind: LineKind, nick: string, text: string, time: number, msgid = "", self = false): Line {
    const plain = stripFormatting(text);
    const mention = !self && (kind === "msg" || kind === "action" || kind === "notice") && this.mentions(plain);
    return { id: msgid || `l${++localId}`, msgid, time, kind, nick, text, self, mention };
  }

  private mentions(text: string): boolean {
    const n = this.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(^|[^\\w])${n}($|[^\\w])`, "i").test(text);
  }

  /** A line from the client itself (help, errors) in a buffer. */
  note(name: string, text: string, kind: LineKind = "info"): void {
    this.info(this.buffer(name) ?? this.serverBuffer(), kind, text, Date.now());
  }

  private info(b: Buffer, kind: LineKind, text: string, time: number): void {
    this.addLine(b, this.line(kind, "", text, time));
  }

  private addLine(b: Buffer, line: Line): void {
    if (line.msgid && b.lines.some((l) => l.msgid === line.msgid)) return;
    b.lines.push(line);
    if (b.lines.length > MAX_LINES) {
      b.lines.splice(0, b.lines.length - MAX_LINES);
      b.historyDone = false;
    }
    const counts = line.kind === "msg" || line.kind === "action" || line.kind === "notice" || line.kind === "e2e";
    if (counts && !line.self && fold(b.name) !== this.active) {
      b.unread++;
      if (line.mention || b.kind === "query") b.mentions++;
    }
  }

  /** The conversation a PRIVMSG/NOTICE belongs to, or null for server notices. */
  private conversation(msg: Message): string | null {
    const target = msg.params[0] ?? "";
    const self = fold(msg.nick) === fold(this.nick);
    if (!target) return null;
    if (isRoom(target)) return target;
    if (!msg.nick || msg.source.indexOf("!") < 0 && msg.source.includes(".")) return null;
    // A "nick" that is the server window's own name is no conversation.
    if (fold(msg.nick) === SERVER || fold(target) === SERVER) return null;
    if (self) return target;
    return msg.nick;
  }

  private messageLine(msg: Message, time: number): Line | null {
    let text = msg.params[1] ?? "";
    const self = fold(msg.nick) === fold(this.nick);
    let kind: LineKind = msg.command === "NOTICE" ? "notice" : "msg";
    const e2e = msg.tags["+chinwag.dev/e2e"];
    if (e2e !== undefined) {
      const fields = e2e.split(",");
      const key = `${msg.nick}:${fields[4] ?? e2e.slice(0, 64)}`;
      if (this.e2eSeen.has(key)) return null;
      this.e2eSeen.add(key);
      if (this.e2eSeen.size > MAX_E2E_SEEN) this.e2eSeen.delete(this.e2eSeen.values().next().value!);
      kind = "e2e";
      text = "Encrypted message: it can't be read in the browser (open it with chinwag chat).";
    } else if (text.startsWith("\x01ACTION ") || text === "\x01ACTION\x01") {
      kind = "action";
      text = text.slice(8).replace(/\x01$/, "");
    } else if (text.startsWith("\x01")) {
      return null;
    }
    return this.line(kind, msg.nick, text, time, msg.tags["msgid"] ?? "", self);
  }

  private onMessage(msg: Message, time: number, _history: boolean): void {
    const target = this.conversation(msg);
    if (target === null) {
      const text = msg.params[1] ?? "";
      if (msg.nick === "NickServ" || !msg.nick.includes(".")) this.info(this.activeBuffer(), "notice", `${msg.nick}: ${text}`, time);
      else this.info(this.serverBuffer(), "notice", text, time);
      return;
    }
    const line = this.messageLine(msg, time);
    if (!line) return;
    let b = this.buffer(target);
    if (!b) {
      // A room the client is not in gets no window from a message; a new private
      // conversation gets one while there are fewer than MAX_QUERIES.
      const queries = [...this.buffers.values()].filter((x) => x.kind === "query").length;
      if (isRoom(target)) return;
      if (queries >= MAX_QUERIES) {
        this.info(this.serverBuffer(), "notice", `${msg.nick} (private, too many conversations open): ${line.kind === "e2e" ? line.text : msg.params[1] ?? ""}`, time);
        return;
      }
      b = this.ensure(target);
    }
    if (b.kind === "query" && msg.tags["account"] && !line.self) b.account = msg.tags["account"];
    b.typing.delete(fold(msg.nick));
    this.addLine(b, line);
    if (!line.self && (line.mention || b.kind === "query")) {
      this.events.push({
        type: "notify", buffer: b.name,
        title: shown(b.kind === "query" ? `${msg.nick} (private)` : `${msg.nick} in ${b.name}`),
        body: line.kind === "e2e" ? "Encrypted message" : stripFormatting(line.text).slice(0, 200),
      });
    }
  }

  private onTagmsg(msg: Message, now: number): void {
    const state = msg.tags["+typing"];
    if (state === undefined || fold(msg.nick) === fold(this.nick)) return;
    const target = this.conversation(msg);
    if (!target) return;
    const b = this.buffer(target);
    if (!b) return;
    // Only someone who could write here: a member of the room, or the conversation's other.
    if (b.kind === "room" && !b.members.has(fold(msg.nick))) return;
    if (state === "active") b.typing.set(fold(msg.nick), now + TYPING_TTL);
    else b.typing.delete(fold(msg.nick));
  }

  /** Nicks typing in a buffer, as they wrote them. */
  typers(b: Buffer): string[] {
    return [...b.typing.keys()].map((k) => b.members.get(k)?.nick ?? (b.kind === "query" ? b.name : k));
  }

  private membershipLine(msg: Message, time: number): Line | null {
    const p = msg.params;
    const id = msg.tags["msgid"] ?? "";
    const self = fold(msg.nick) === fold(this.nick);
    switch (msg.command) {
      case "JOIN": return this.line("join", msg.nick, `${msg.nick} joined`, time, id, self);
      case "PART": return this.line("part", msg.nick, `${msg.nick} left${p[1] ? ` (${p[1]})` : ""}`, time, id, self);
      case "QUIT": return this.line("quit", msg.nick, `${msg.nick} quit${p[0] ? ` (${p[0]})` : ""}`, time, id, self);
      case "KICK": return this.line("kick", msg.nick, `${p[1]} was kicked by ${msg.nick}${p[2] ? ` (${p[2]})` : ""}`, time, id, self);
      case "NICK": return this.line("nick", msg.nick, `${msg.nick} is now ${p[0]}`, time, id, self);
      case "TOPIC": return this.line("topic", msg.nick, `${msg.nick} set the topic: ${p[1] ?? ""}`, time, id, self);
      case "MODE": return this.line("mode", msg.nick, `${msg.nick} set mode ${p.slice(1).join(" ")}`, time, id, self);
      default: return null;
    }
  }

  private onMembership(msg: Message, time: number, _history: boolean): void {
    const p = msg.params;
    const who = fold(msg.nick);
    const self = who === fold(this.nick);
    const line = this.membershipLine(msg, time);
    switch (msg.command) {
      case "JOIN": {
        if (!p[0] || !isRoom(p[0])) break;
        // Someone else's JOIN opens no window: only the client's own does.
        const b = self ? this.ensure(p[0]) : this.buffer(p[0]);
        if (!b) break;
        const account = this.caps.has("extended-join") && p[1] && p[1] !== "*" ? p[1] : "";
        if (self) {
          const first = !b.joined;
          b.joined = true;
          b.members.clear();
          if (first) this.events.push({ type: "joined", buffer: b.name });
        }
        b.members.set(who, { nick: msg.nick, prefixes: "", away: false, account, realname: account || p[1] === "*" ? (p[2] ?? "") : "" });
        if (line) this.addLine(b, line);
        break;
      }
      case "PART": {
        const b = this.buffer(p[0] ?? "");
        if (!b) break;
        b.members.delete(who);
        b.typing.delete(who);
        if (self) {
          b.joined = false;
          b.members.clear();
        }
        if (line) this.addLine(b, line);
        break;
      }
      case "KICK": {
        const b = this.buffer(p[0] ?? "");
        if (!b) break;
        const kicked = fold(p[1] ?? "");
        b.members.delete(kicked);
        if (kicked === fold(this.nick)) {
          b.joined = false;
          b.members.clear();
        }
        if (line) this.addLine(b, line);
        break;
      }
      case "QUIT":
        for (const b of this.buffers.values()) {
          if (b.members.delete(who) || (b.kind === "query" && fold(b.name) === who)) {
            b.typing.delete(who);
            if (line) this.addLine(b, { ...line, id: `l${++localId}`, msgid: "" });
          }
        }
        break;
      case "NICK": {
        const to = p[0] ?? "";
        if (!to) break;
        if (self) this.nick = to;
        for (const b of this.buffers.values()) {
          const m = b.members.get(who);
          const isQuery = b.kind === "query" && fold(b.name) === who;
          if (m) {
            b.members.delete(who);
            b.members.set(fold(to), { ...m, nick: to });
          }
          if (m || isQuery || (self && b.kind === "server")) {
            if (line) this.addLine(b, { ...line, id: `l${++localId}`, msgid: "" });
          }
          // The conversation follows the new nick, unless that names the server window or
          // a room (which a nick cannot be).
          if (isQuery && fold(to) !== SERVER && !isRoom(to)) {
            this.buffers.delete(fold(b.name));
            b.name = to;
            this.buffers.set(fold(to), b);
            if (this.active === who) this.active = fold(to);
          }
        }
        break;
      }
      case "TOPIC": {
        const b = this.buffer(p[0] ?? "");
        if (!b || b.kind !== "room") break;
        b.topic = p[1] ?? "";
        if (line) this.addLine(b, line);
        break;
      }
      case "MODE": {
        const b = this.buffer(p[0] ?? "");
        if (!b || b.kind !== "room") break;
        let adding = true;
        let arg = 2;
        for (const c of p[1] ?? "") {
          if (c === "+" || c === "-") { adding = c === "+"; continue; }
          const i = this.prefixModes.indexOf(c);
          const takesArg = i >= 0 || "beIkfjl".includes(c) && (adding || c !== "l");
          if (i >= 0) {
            const m = b.members.get(fold(p[arg] ?? ""));
            if (m) {
              const ch = this.prefixChars[i];
              const set = new Set(m.prefixes.replace(ch, ""));
              if (adding) set.add(ch);
              m.prefixes = [...this.prefixChars].filter((x) => set.has(x)).join("");
            }
          }
          if (takesArg) arg++;
        }
        if (line) this.addLine(b, line);
        break;
      }
    }
  }

  /** A member's rank for sorting: 0 for the highest prefix, prefix count for none. */
  rank(m: Member): number {
    const i = m.prefixes ? this.prefixChars.indexOf(m.prefixes[0]) : -1;
    return i < 0 ? this.prefixChars.length : i;
  }
}
