// The page: login form, sidebar, log, members, dialogs. It renders the session's state and
// turns what the user does into session calls; the session never touches the DOM.

import { fold, isRoom } from "./irc";
import { runCommand, type CommandHost } from "./commands";
import { LogView } from "./log";
import { shown } from "./format";
import { isScramKeys } from "./scram";
import { appendFormatted, el, nickClass } from "./render";
import { MAX_MESSAGE, Session, type Buffer, type Login, type SessionEvent } from "./session";
import { socketUrl, Transport } from "./transport";

/** What "remember me" keeps in localStorage (only when ticked; cleared by Log out): the nick,
 * the account and the SCRAM keys of its last login, never the password. */
const REMEMBER_KEY = "chinwag.login";
/** The rooms to join again (sessionStorage, or localStorage with "remember me"). */
const ROOMS_KEY = "chinwag.rooms";
/** A typing notice is refreshed at most this often while the user types. */
const TYPING_EVERY = 3000;
/** How long a send waits for the answer to "has this contact E2E devices?". */
const E2E_WAIT = 4000;
/** Members listed at most (the title still counts them all): a room of thousands would
 * otherwise rebuild thousands of rows on every message. */
const MEMBERS_SHOWN = 500;
/** Rooms of the room list shown at most; searching narrows the rest down. */
const ROOMS_SHOWN = 200;

function $(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
}

function input(id: string): HTMLInputElement {
  return $(id) as HTMLInputElement;
}

export class App implements CommandHost {
  session!: Session;
  private transport: Transport | null = null;
  private log = new LogView($("log"));
  private remember = false;
  private typingSent = 0;
  private typingTarget = "";
  private pending = new Map<string, string[]>();
  private renderQueued = false;
  private connected = false;
  private statusText = "";

  constructor() {
    this.bindLogin();
    this.bindShell();
    const saved = this.loadSaved();
    if (saved) this.start(saved, true);
    window.setInterval(() => {
      if (this.session?.tick(Date.now())) this.afterReceive();
    }, 1000);
  }

  // ----- login -----

  private bindLogin(): void {
    const form = $("login-form") as HTMLFormElement;
    const update = () => {
      const mode = (form.elements.namedItem("mode") as RadioNodeList).value;
      $("password-field").hidden = mode === "guest";
      $("remember-field").hidden = mode === "guest";
      input("login-password").required = mode !== "guest";
      input("login-password").autocomplete = mode === "register" ? "new-password" : "current-password";
      $("login-submit").textContent = { guest: "Join as guest", login: "Log in", register: "Create account" }[mode] ?? "Join";
    };
    form.addEventListener("change", update);
    update();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const mode = (form.elements.namedItem("mode") as RadioNodeList).value as Login["mode"];
      const nick = input("login-nick").value.trim();
      if (!/^[^\s#&:,*?!@][^\s,*?!@]{0,29}$/.test(nick)) {
        $("login-error").textContent = "A nick is one word of up to 30 characters, without , * ? ! @ and not starting with # & or :";
        return;
      }
      $("login-error").textContent = "";
      const login: Login = { nick, mode, account: nick, password: mode === "guest" ? "" : input("login-password").value };
      this.remember = mode !== "guest" && input("login-remember").checked;
      this.start(login, false);
    });
    input("login-nick").focus();
  }

  private loadSaved(): Login | null {
    try {
      const raw = localStorage.getItem(REMEMBER_KEY);
      if (!raw) return null;
      const v = JSON.parse(raw) as Partial<Login>;
      if (typeof v.nick !== "string" || typeof v.account !== "string") return null;
      // An older client kept the password itself: it logs in once more with it, and then its
      // keys take its place.
      const password = typeof v.password === "string" ? v.password : "";
      const scram = isScramKeys(v.scram) ? v.scram : undefined;
      if (!password && !scram) return null;
      this.remember = true;
      return { nick: v.nick, account: v.account, password, scram, mode: "login" };
    } catch {
      return null;
    }
  }

  private store(): Storage {
    return this.remember ? localStorage : sessionStorage;
  }

  private start(login: Login, resumed: boolean): void {
    this.transport?.stop();
    this.session = new Session(login);
    let rooms: string[] = [];
    try {
      rooms = JSON.parse(this.store().getItem(ROOMS_KEY) ?? "[]") as string[];
    } catch { /* a damaged list joins nothing */ }
    for (const r of Array.isArray(rooms) ? rooms : []) if (typeof r === "string" && isRoom(r)) this.session.ensure(r);
    $("login").hidden = true;
    $("app").hidden = false;
    this.setStatus(resumed ? "Connecting as saved…" : "Connecting…");
    this.transport = new Transport(socketUrl(location), {
      open: () => {
        this.connected = true;
        this.setStatus("Signing in…");
        this.session.start(Date.now());
        this.flush();
      },
      line: (text) => {
        this.session.receive(text, Date.now());
        this.afterReceive();
      },
      closed: (retryIn, reason) => {
        this.connected = false;
        this.session.disconnected();
        if (retryIn === null) return;
        this.setStatus(`Disconnected (${reason}). Reconnecting in ${Math.ceil(retryIn / 1000)} s…`, true);
        this.render();
      },
    });
    this.transport.connect();
    this.render();
    input("input").focus();
  }

  private afterReceive(): void {
    const events = this.session.events.splice(0);
    for (const e of events) this.onEvent(e);
    this.flush();
    this.render();
  }

  private onEvent(e: SessionEvent): void {
    const s = this.session;
    switch (e.type) {
      case "registered":
        this.transport?.healthy();
        this.setStatus("");
        if (s.login.mode === "register") break;
        if (![...s.buffers.values()].some((b) => b.kind === "room")) this.open("#general", true);
        break;
      case "loggedIn":
        // After a registration, reconnects log in with the same password.
        s.login = { ...s.login, mode: "login", account: e.account, scram: e.scram ?? s.login.scram };
        // Only SCRAM keys are kept (a login with PLAIN leaves nothing to keep but the
        // password, which is not): the next login with the password saves them.
        if (this.remember && e.scram) localStorage.setItem(REMEMBER_KEY, JSON.stringify({ nick: s.nick, account: e.account, scram: e.scram }));
        if (![...s.buffers.values()].some((b) => b.kind === "room")) this.open("#general", true);
        break;
      case "authFailed":
        if (!s.registered || s.login.mode === "register") this.backToLogin(e.text);
        break;
      case "joined":
        s.fetchLatest(e.buffer);
        this.saveRooms();
        break;
      case "listDone":
        this.renderRooms();
        break;
      case "e2eKnown":
        this.releasePending(e.buffer);
        break;
      case "notify":
        this.notify(e.buffer, e.title, e.body);
        break;
      case "stalled":
        this.transport?.drop(e.text);
        break;
    }
  }

  private backToLogin(reason: string): void {
    this.transport?.stop();
    this.transport = null;
    localStorage.removeItem(REMEMBER_KEY);
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = shown(reason);
    input("login-password").value = "";
  }

  private saveRooms(): void {
    const rooms = [...this.session.buffers.values()].filter((b) => b.kind === "room").map((b) => b.name);
    this.store().setItem(ROOMS_KEY, JSON.stringify(rooms));
  }

  private flush(): void {
    const out = this.session.outbox;
    while (out.length && this.transport?.open) this.transport.send(out.shift()!);
    if (!this.transport?.open) out.length = 0;
  }

  private setStatus(text: string, retry = false): void {
    this.statusText = text;
    const status = $("status");
    status.replaceChildren(document.createTextNode(shown(text)));
    if (retry) {
      const b = el("button", "", "Retry now");
      b.type = "button";
      b.addEventListener("click", () => this.transport?.retryNow());
      status.append(b);
    }
    status.hidden = text === "";
  }

  // ----- CommandHost -----

  current(): string {
    const b = this.session.buffers.get(this.session.active);
    return b ? b.name : "*server*";
  }

  open(name: string, join = false): void {
    const s = this.session;
    const fresh = !s.buffer(name);
    const b = s.ensure(name);
    if (b.kind === "room" && !b.joined && (join || fresh)) s.join(b.name);
    if (b.kind === "query") {
      if (fresh || !b.synced) s.fetchLatest(b.name);
      // Devices come and go: ask again each time the conversation is opened.
      if (s.registered) s.checkE2e(b.name);
    }
    s.setActive(b.name);
    this.closeDrawers();
    this.flush();
    this.render();
    input("input").focus();
  }

  info(text: string): void {
    this.session.note(this.current(), text);
    this.render();
  }

  sendText(target: string, text: string): void {
    const s = this.session;
    const b = s.ensure(target);
    if (b.kind === "query" && s.account && !b.clearConfirmed) {
      if (b.e2eDevices === null) {
        const queue = this.pending.get(fold(target)) ?? [];
        queue.push(text);
        this.pending.set(fold(target), queue);
        if (queue.length === 1) {
          s.checkE2e(target);
          window.setTimeout(() => {
            if (b.e2eDevices === null) b.e2eDevices = 0;
            this.releasePending(target);
          }, E2E_WAIT);
        }
        return;
      }
      if (b.e2eDevices > 0) {
        this.askClear(b, [text]);
        return;
      }
    }
    s.say(target, text);
  }

  private releasePending(target: string): void {
    const queue = this.pending.get(fold(target));
    if (!queue?.length) {
      this.render();
      return;
    }
    this.pending.delete(fold(target));
    const b = this.session.ensure(target);
    if ((b.e2eDevices ?? 0) > 0 && !b.clearConfirmed) this.askClear(b, queue);
    else {
      for (const text of queue) this.session.say(target, text);
      this.flush();
    }
    this.render();
  }

  private askClear(b: Buffer, texts: string[]): void {
    const devices = b.e2eDevices ?? 0;
    this.prompt({
      title: `Send to ${shown(b.name)} in clear?`,
      text: `${shown(b.name)} uses end-to-end encryption (${devices} device${devices === 1 ? "" : "s"}), but the browser cannot encrypt yet: ` +
        "this message would go unencrypted, readable by the server. Send it anyway?",
      ok: "Send in clear",
      value: null,
    }, (ok) => {
      if (!ok) return;
      b.clearConfirmed = true;
      for (const text of texts) this.session.say(b.name, text);
      this.flush();
      this.render();
    });
  }

  // ----- shell -----

  private bindShell(): void {
    const box = $("input") as HTMLTextAreaElement;
    ($("compose") as HTMLFormElement).addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Tab" && box.value && !event.shiftKey) {
        if (this.complete(box)) event.preventDefault();
      }
    });
    box.addEventListener("input", () => {
      this.autosize(box);
      this.typed(box.value);
    });
    $("log").addEventListener("scroll", () => this.maybeLoadOlder());
    $("browse").addEventListener("click", () => this.openRooms());
    $("new-pm").addEventListener("click", () =>
      this.prompt({ title: "New conversation", text: "Who do you want to talk to?", ok: "Open", value: "" }, (ok, nick) => {
        if (ok && nick?.trim()) this.open(nick.trim().split(" ")[0]);
      }));
    $("edit-topic").addEventListener("click", () => {
      const b = this.session.buffer(this.current());
      if (!b || b.kind !== "room") return;
      this.prompt({ title: `Topic of ${shown(b.name)}`, text: "", ok: "Set topic", value: b.topic }, (ok, topic) => {
        if (ok && topic !== null) {
          this.session.send("TOPIC", [b.name, topic]);
          this.flush();
        }
      });
    });
    $("leave").addEventListener("click", () => {
      this.session.close(this.current());
      this.saveRooms();
      this.flush();
      this.open(this.nextBuffer(0));
    });
    $("away").addEventListener("click", () => {
      if (this.session.away) {
        this.session.send("AWAY");
        this.flush();
        return;
      }
      this.prompt({ title: "Set away", text: "A message for people who write to you:", ok: "Set away", value: "Away" }, (ok, reason) => {
        if (ok) {
          this.session.send("AWAY", [reason?.trim() || "Away"]);
          this.flush();
        }
      });
    });
    $("notify").addEventListener("click", () => {
      if (!("Notification" in window)) return;
      void Notification.requestPermission().then(() => this.render());
    });
    $("logout").addEventListener("click", () => {
      localStorage.removeItem(REMEMBER_KEY);
      localStorage.removeItem(ROOMS_KEY);
      sessionStorage.removeItem(ROOMS_KEY);
      this.transport?.stop();
      this.transport = null;
      location.reload();
    });
    $("menu").addEventListener("click", () => this.toggleDrawer("sidebar"));
    $("members-toggle").addEventListener("click", () => this.toggleDrawer("members"));
    $("scrim").addEventListener("click", () => this.closeDrawers());
    document.addEventListener("keydown", (event) => {
      if (!this.session || $("app").hidden) return;
      if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
        event.preventDefault();
        this.open(this.nextBuffer(event.key === "ArrowUp" ? -1 : 1));
      } else if (event.altKey && /^[1-9]$/.test(event.key)) {
        const b = this.ordered()[Number(event.key) - 1];
        if (b) {
          event.preventDefault();
          this.open(b.name);
        }
      } else if (event.key === "Escape") {
        // An open dialog handles its own Escape (and gives the focus back when it closes).
        if (document.querySelector("dialog[open]")) return;
        const drawer = document.querySelector(".sidebar.open, .members.open");
        this.closeDrawers();
        if (!drawer) input("input").focus();
      }
    });
    document.addEventListener("visibilitychange", () => this.render());
    ($("rooms-search") as HTMLInputElement).addEventListener("input", () => this.renderRooms());
    $("create-room").addEventListener("click", () => this.createRoom());
    input("create-name").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.createRoom();
      }
    });
  }

  private submit(): void {
    const box = $("input") as HTMLTextAreaElement;
    const text = box.value;
    if (!text.trim()) return;
    if (text.length > MAX_MESSAGE) {
      // The text stays in the box, to be shortened.
      this.info(`That message is too long to send (${text.length} characters, at most ${MAX_MESSAGE}).`);
      return;
    }
    box.value = "";
    this.autosize(box);
    const target = this.current();
    if (this.typingTarget) {
      this.session.typing(this.typingTarget, "done");
      this.typingTarget = "";
      this.typingSent = 0;
    }
    if (text.startsWith("/") && !text.startsWith("//")) runCommand(this, text);
    else if (target === "*server*") this.info("This is the server's window: join a room or open a conversation to talk.");
    else this.sendText(target, text.startsWith("//") ? text.slice(1) : text);
    this.flush();
    this.render();
  }

  private typed(value: string): void {
    const target = this.current();
    if (target === "*server*" || value.startsWith("/")) return;
    const now = Date.now();
    if (value === "") {
      if (this.typingTarget) this.session.typing(this.typingTarget, "done");
      this.typingTarget = "";
      this.typingSent = 0;
    } else if (now - this.typingSent > TYPING_EVERY || this.typingTarget !== target) {
      this.session.typing(target, "active");
      this.typingTarget = target;
      this.typingSent = now;
    }
    this.flush();
  }

  private complete(box: HTMLTextAreaElement): boolean {
    const b = this.session.buffer(this.current());
    if (!b) return false;
    const m = /(\S+)$/.exec(box.value);
    if (!m) return false;
    const found = [...b.members.values()].find((x) => fold(x.nick).startsWith(fold(m[1])));
    if (!found) return false;
    box.value = box.value.slice(0, m.index) + found.nick + (m.index === 0 ? ": " : " ");
    return true;
  }

  private autosize(box: HTMLTextAreaElement): void {
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight + 2, 160)}px`;
  }

  private maybeLoadOlder(): void {
    const log = $("log");
    if (log.scrollTop < 80 && this.session.fetchBefore(this.current())) {
      this.flush();
      this.render();
    }
  }

  private phone(): boolean {
    return window.matchMedia("(max-width: 760px)").matches;
  }

  /** The sidebar and (on phones) the member list slide over the log; on desktops the member
   * list is a column that can be hidden. */
  private toggleDrawer(id: "sidebar" | "members"): void {
    const node = $(id);
    if (id === "sidebar" || this.phone()) {
      const open = !node.classList.contains("open");
      this.closeDrawers();
      node.classList.toggle("open", open);
      $(id === "sidebar" ? "menu" : "members-toggle").setAttribute("aria-expanded", String(open));
      $("scrim").hidden = !open;
    } else {
      const closed = !node.classList.contains("closed");
      node.classList.toggle("closed", closed);
      $("members-toggle").setAttribute("aria-expanded", String(!closed));
    }
  }

  private closeDrawers(): void {
    for (const [id, button] of [["sidebar", "menu"], ["members", "members-toggle"]]) {
      $(id).classList.remove("open");
      if (this.phone() || id === "sidebar") $(button).setAttribute("aria-expanded", "false");
    }
    $("scrim").hidden = true;
  }

  /** Buffers in sidebar order: server, rooms, conversations. */
  private ordered(): Buffer[] {
    const all = [...this.session.buffers.values()];
    const by = (k: Buffer["kind"]) => all.filter((b) => b.kind === k).sort((x, y) => fold(x.name).localeCompare(fold(y.name)));
    return [...by("server"), ...by("room"), ...by("query")];
  }

  private nextBuffer(step: number): string {
    const list = this.ordered();
    const i = list.findIndex((b) => fold(b.name) === this.session.active);
    const next = list[(Math.max(i, 0) + step + list.length) % list.length];
    return next?.name ?? "*server*";
  }

  // ----- notifications -----

  private notify(buffer: string, title: string, body: string): void {
    const looking = !document.hidden && fold(buffer) === this.session.active;
    if (looking || !("Notification" in window) || Notification.permission !== "granted") return;
    const n = new Notification(title, { body, tag: `chinwag-${fold(buffer)}` });
    n.onclick = () => {
      window.focus();
      this.open(buffer);
      n.close();
    };
  }

  // ----- rendering -----

  render(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.draw();
    });
  }

  private draw(): void {
    const s = this.session;
    if (!s) return;
    const b = s.buffers.get(s.active) ?? s.serverBuffer();
    if (fold(b.name) !== s.active) s.setActive(b.name);
    b.unread = 0;
    b.mentions = 0;
    this.drawSidebar();
    this.drawHeader(b);
    this.drawMembers(b);
    let note = "";
    if (b.kind !== "server") {
      if (b.historyLoading) note = "Loading older messages…";
      else if (b.historyDone) note = b.lines.length ? "This is the beginning of the history." : "No messages yet.";
    }
    this.log.render(b, note);
    const typers = s.typers(b);
    $("typing").textContent = shown(typers.length === 0 ? "" : typers.length === 1 ? `${typers[0]} is typing…`
      : typers.length <= 3 ? `${typers.slice(0, -1).join(", ")} and ${typers[typers.length - 1]} are typing…` : "Several people are typing…");
    const unread = [...s.buffers.values()].reduce((n, x) => n + x.mentions, 0);
    document.title = `${unread ? `(${unread}) ` : ""}${shown(b.kind === "server" ? s.networkName : b.name)} · chinwag`;
    if (b.kind === "room" && !b.historyLoading && s.registered && b.joined && !b.historyDone) {
      const log = $("log");
      if (log.scrollHeight <= log.clientHeight + 10 && s.fetchBefore(b.name)) this.flush();
    }
  }

  private drawSidebar(): void {
    const s = this.session;
    $("network").textContent = fold(s.networkName) === "chinwag" ? "" : shown(s.networkName);
    $("me").textContent = shown(s.account && fold(s.account) !== fold(s.nick) ? `${s.nick} (${s.account})` : s.nick);
    $("me").title = shown(s.account ? `Logged in as ${s.account}` : "Guest (not logged in)");
    $("me").dataset.account = s.account;
    $("me-dot").className = `dot${!this.connected || !s.registered ? " offline" : s.away ? " away" : ""}`;
    $("away").textContent = s.away ? "Back" : "Set away";
    const notifyButton = $("notify");
    notifyButton.hidden = !("Notification" in window) || Notification.permission !== "default";
    const nav = $("buffers");
    const frag = document.createDocumentFragment();
    let group = "";
    for (const b of this.ordered()) {
      const label = b.kind === "room" ? "Rooms" : b.kind === "query" ? "Conversations" : "";
      if (label && label !== group) {
        frag.append(el("div", "buffer-group", label));
        group = label;
      }
      const row = el("div", "buffer-row");
      const active = fold(b.name) === s.active;
      row.classList.toggle("active", active);
      row.classList.toggle("unread", b.unread > 0);
      row.classList.toggle("parted", b.kind === "room" && !b.joined);
      const btn = el("button", "buffer-btn");
      btn.type = "button";
      if (active) btn.setAttribute("aria-current", "page");
      const name = shown(b.kind === "server" ? s.networkName : b.name);
      btn.append(el("span", "buffer-name", b.kind === "query" ? `@ ${name}` : name));
      let label2 = name;
      if (b.unread > 0) {
        const badge = el("span", `badge${b.mentions ? " mention" : ""}`, String(b.unread));
        badge.setAttribute("aria-hidden", "true");
        btn.append(badge);
        label2 += `, ${b.unread} unread${b.mentions ? `, ${b.mentions} for you` : ""}`;
      }
      btn.setAttribute("aria-label", label2);
      btn.addEventListener("click", () => this.open(b.name));
      row.append(btn);
      if (b.kind !== "server") {
        const close = el("button", "buffer-close", "×");
        close.type = "button";
        close.setAttribute("aria-label", b.kind === "room" ? `Leave ${name}` : `Close the conversation with ${name}`);
        close.addEventListener("click", () => {
          s.close(b.name);
          this.saveRooms();
          this.flush();
          this.render();
        });
        row.append(close);
      }
      frag.append(row);
    }
    nav.replaceChildren(frag);
  }

  private drawHeader(b: Buffer): void {
    const s = this.session;
    const name = shown(b.kind === "server" ? s.networkName : b.name);
    $("title").textContent = name;
    const topic = $("topic");
    topic.replaceChildren();
    if (b.kind === "room") {
      if (b.topic) appendFormatted(topic, b.topic);
      else topic.textContent = b.joined ? "No topic" : "Not in this room";
      topic.title = topic.textContent ?? "";
    } else if (b.kind === "query") {
      topic.textContent = "Private conversation";
    } else topic.textContent = this.statusText || "Server messages";
    $("edit-topic").hidden = b.kind !== "room" || !b.joined;
    $("members-toggle").hidden = b.kind !== "room";
    $("leave").hidden = b.kind === "server";
    $("leave").setAttribute("aria-label", b.kind === "room" ? `Leave ${name}` : `Close the conversation with ${name}`);
    const note = $("e2e-note");
    note.hidden = !(b.kind === "query" && (b.e2eDevices ?? 0) > 0);
    note.textContent = `${name} uses end-to-end encryption. Their encrypted messages can't be read here, and what you send from the browser goes in clear.`;
    input("input").placeholder = b.kind === "server" ? "Type /join room or /help" : `Message ${name}`;
  }

  private drawMembers(b: Buffer): void {
    const s = this.session;
    const panel = $("members");
    panel.hidden = b.kind !== "room";
    const visible = this.phone() ? panel.classList.contains("open") : !panel.classList.contains("closed");
    $("members-toggle").setAttribute("aria-expanded", String(visible));
    if (b.kind !== "room") return;
    const members = [...b.members.values()].sort((x, y) => s.rank(x) - s.rank(y) || fold(x.nick).localeCompare(fold(y.nick)));
    $("members-title").textContent = `Members — ${members.length}`;
    const list = $("member-list");
    const frag = document.createDocumentFragment();
    for (const m of members.slice(0, MEMBERS_SHOWN)) {
      const li = el("li");
      const btn = el("button", m.away ? "away" : "");
      btn.type = "button";
      const role = m.prefixes.includes("@") ? "operator" : m.prefixes.includes("+") ? "voice" : "";
      btn.setAttribute("aria-label", shown(`${m.nick}${role ? `, ${role}` : ""}${m.away ? ", away" : ""}: open a private conversation`));
      btn.append(el("span", "prefix", m.prefixes.slice(0, 1)), el("span", `member-nick ${nickClass(m.nick)}`, shown(m.nick)));
      btn.title = shown([m.realname, m.account && `account ${m.account}`].filter(Boolean).join(" · "));
      btn.addEventListener("click", () => {
        if (fold(m.nick) !== fold(s.nick)) this.open(m.nick);
      });
      li.append(btn);
      frag.append(li);
    }
    if (members.length > MEMBERS_SHOWN) frag.append(el("li", "rooms-empty", `and ${members.length - MEMBERS_SHOWN} more`));
    list.replaceChildren(frag);
  }

  // ----- dialogs -----

  private openRooms(): void {
    this.session.list();
    this.flush();
    this.renderRooms();
    const dialog = $("rooms-dialog") as HTMLDialogElement;
    if (!dialog.open) dialog.showModal();
    input("rooms-search").focus();
  }

  private renderRooms(): void {
    const s = this.session;
    const query = fold(input("rooms-search").value.trim());
    const list = $("rooms-list");
    const rooms = s.rooms
      .filter((r) => !query || fold(r.name).includes(query) || fold(r.topic).includes(query))
      .sort((x, y) => y.users - x.users || x.name.localeCompare(y.name));
    const frag = document.createDocumentFragment();
    if (s.listing) frag.append(el("li", "rooms-empty", "Loading rooms…"));
    else if (rooms.length === 0) frag.append(el("li", "rooms-empty", query ? "No room matches." : "No public rooms."));
    for (const r of rooms.slice(0, ROOMS_SHOWN)) {
      const li = el("li");
      const info = el("div", "room-info");
      info.append(el("div", "room-name", shown(r.name)));
      const topic = el("div", "room-topic");
      appendFormatted(topic, r.topic);
      info.append(topic);
      const users = el("span", "room-users", `${r.users} ${r.users === 1 ? "person" : "people"}`);
      const join = el("button", "", s.buffer(r.name)?.joined ? "Open" : "Join");
      join.type = "button";
      join.setAttribute("aria-label", `Join ${shown(r.name)}`);
      join.addEventListener("click", () => {
        ($("rooms-dialog") as HTMLDialogElement).close();
        this.open(r.name, true);
      });
      li.append(info, users, join);
      frag.append(li);
    }
    if (rooms.length > ROOMS_SHOWN) frag.append(el("li", "rooms-empty", `${rooms.length - ROOMS_SHOWN} more: search to find them.`));
    list.replaceChildren(frag);
  }

  private createRoom(): void {
    const raw = input("create-name").value.trim().replace(/\s+/g, "-");
    if (!raw) return;
    input("create-name").value = "";
    ($("rooms-dialog") as HTMLDialogElement).close();
    this.open(isRoom(raw) ? raw : `#${raw}`, true);
  }

  private prompt(
    opts: { title: string; text: string; ok: string; value: string | null },
    done: (ok: boolean, value: string | null) => void,
  ): void {
    const dialog = $("prompt-dialog") as HTMLDialogElement;
    $("prompt-title").textContent = opts.title;
    $("prompt-text").textContent = opts.text;
    $("prompt-ok").textContent = opts.ok;
    const field = input("prompt-input");
    field.hidden = opts.value === null;
    field.value = opts.value ?? "";
    dialog.returnValue = "";
    dialog.onclose = () => {
      dialog.onclose = null;
      done(dialog.returnValue === "ok", opts.value === null ? null : field.value);
      input("input").focus();
    };
    dialog.showModal();
    if (opts.value !== null) field.select();
    else $("prompt-ok").focus();
  }
}
