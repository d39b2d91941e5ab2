// Unit tests of the client's sans-IO parts (IRC lines, formatting, the session), run by node:
// `npm test`. The browser tests (web/tests/*.mjs, driven by crates/chinwag/tests/web_*.rs)
// check what only a browser can.
import assert from "node:assert/strict";
import { build, parse } from "../src/irc";
import { formatMessage, parseFormatting, safeHref, shown, stripFormatting } from "../src/format";
import { deriveKeys, hmac, sha256 } from "../src/scram";
import { Backoff, MAX_BACKOFF, MIN_BACKOFF, STABLE_AFTER } from "../src/transport";
import { MAX_MESSAGE, MAX_OPEN_BATCHES, MAX_QUERIES, REGISTER_TIMEOUT, Session } from "../src/session";

const tests: [string, () => void][] = [];
const test = (name: string, fn: () => void) => tests.push([name, fn]);

test("parse: tags, prefix, trailing", () => {
  const m = parse("@time=2024-01-01T00:00:00.000Z;msgid=a\\sb;+typing=active :bob!u@h PRIVMSG #r :hi there")!;
  assert.equal(m.nick, "bob");
  assert.equal(m.command, "PRIVMSG");
  assert.deepEqual(m.params, ["#r", "hi there"]);
  assert.equal(m.tags["msgid"], "a b");
  assert.equal(m.tags["+typing"], "active");
  assert.equal(parse(""), null);
  assert.equal(parse("@a=b"), null);
  assert.deepEqual(parse("PING :x y")!.params, ["x y"]);
});

test("build: escapes tags, never lets CR/LF through", () => {
  assert.equal(build("PRIVMSG", ["#r", "a\r\nQUIT"]), "PRIVMSG #r :a  QUIT");
  assert.equal(build("TAGMSG", ["#r"], { "+typing": "active" }), "@+typing=active TAGMSG #r");
  assert.equal(build("PRIVMSG", ["#r", ":)"]), "PRIVMSG #r ::)");
  assert.equal(build("TAGMSG", ["#r"], { x: "a;b c" }), "@x=a\\:b\\sc TAGMSG #r");
  assert.equal(build("NICK", ["two words"]), "NICK :two words");
});

test("formatting: bold, colours, reset, bidi dropped", () => {
  const runs = parseFormatting("\x02bold\x02 \x0304,12red\x0f plain\u202eevil");
  assert.equal(runs[0].text, "bold");
  assert.ok(runs[0].style.bold);
  assert.equal(runs[2].style.fg, "4");
  assert.equal(runs[2].style.bg, "12");
  assert.equal(runs[3].text, " plainevil");
  assert.equal(runs[3].style.fg, "");
  assert.equal(stripFormatting("\x1ditalic\x1d\x0399,99x"), "italicx");
});

test("links: only http(s), trailing punctuation left out", () => {
  const runs = formatMessage("see https://example.com/a?b=1. and javascript:alert(1) http://x.y/(z)");
  const links = runs.filter((r) => r.href).map((r) => r.href);
  assert.deepEqual(links, ["https://example.com/a?b=1", "http://x.y/(z)"]);
  assert.equal(safeHref("javascript:alert(1)"), null);
  assert.equal(safeHref("data:text/html,x"), null);
});

function registered(mode: "guest" | "login" = "guest"): Session {
  const s = new Session({ nick: "alice", mode, account: "alice", password: "pw" });
  s.start();
  s.receive("CAP * LS :message-tags server-time echo-message batch multi-prefix draft/chathistory sasl=PLAIN");
  s.outbox.length = 0;
  s.receive("CAP alice ACK :message-tags server-time echo-message batch multi-prefix draft/chathistory" + (mode === "login" ? " sasl" : ""));
  return s;
}

/** A registered guest in #r. */
function inRoom(): Session {
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #r");
  return s;
}

test("session: guest asks for caps and ends negotiation", () => {
  const s = new Session({ nick: "alice", mode: "guest", account: "", password: "" });
  s.start();
  assert.deepEqual(s.outbox.splice(0), ["CAP LS 302", "NICK alice", "USER alice 0 * :chinwag web client"]);
  s.receive("CAP * LS * :message-tags sasl");
  assert.deepEqual(s.outbox, []);
  s.receive("CAP * LS :echo-message unknown-cap");
  assert.deepEqual(s.outbox.splice(0), ["CAP REQ :message-tags echo-message"]);
  s.receive("CAP alice ACK :message-tags echo-message");
  assert.deepEqual(s.outbox.splice(0), ["CAP END"]);
});

test("session: a taken nick on the first connection is an error, on a reconnect a variant", () => {
  const s = new Session({ nick: "alice", mode: "guest", account: "", password: "" });
  s.start();
  s.outbox.length = 0;
  s.receive(":srv 433 * alice :Nickname is already in use");
  assert.deepEqual(s.events.map((e) => e.type), ["authFailed"]);
  assert.match((s.events[0] as { text: string }).text, /alice is taken/);
  assert.ok(!s.outbox.some((l) => l.startsWith("NICK")), "no quiet alice_");
  s.events.length = 0;
  s.start();
  s.receive(":srv 001 alice :Welcome");
  s.start();
  s.outbox.length = 0;
  s.receive(":srv 433 * alice :Nickname is already in use");
  assert.deepEqual(s.outbox, ["NICK alice_"]);
  assert.ok(!s.events.some((e) => e.type === "authFailed"));
});

test("session: SASL PLAIN login", () => {
  const s = registered("login");
  assert.deepEqual(s.outbox.splice(0), ["AUTHENTICATE PLAIN"]);
  s.receive("AUTHENTICATE +");
  assert.deepEqual(s.outbox.splice(0), [`AUTHENTICATE ${btoa("alice\0alice\0pw")}`]);
  s.receive(":srv 900 alice alice!a@h alice :You are now logged in as alice");
  s.receive(":srv 903 alice :SASL authentication successful");
  assert.deepEqual(s.outbox.splice(0), ["CAP END"]);
  assert.equal(s.account, "alice");
});

test("session: history, scroll back, gap fill after reconnect", () => {
  const s = inRoom();
  s.fetchLatest("#r");
  s.outbox.length = 0;
  s.receive(":srv BATCH +b1 chathistory #r");
  for (let i = 5; i < 8; i++) s.receive(`@batch=b1;msgid=m${i};time=2024-01-01T00:0${i}:00.000Z :bob!b@h PRIVMSG #r :n${i}`);
  s.receive(":srv BATCH -b1");
  const b = s.buffer("#r")!;
  assert.deepEqual(b.lines.filter((l) => l.kind === "msg").map((l) => l.text), ["n5", "n6", "n7"]);
  assert.ok(b.historyDone, "a short first page is the whole history");
  b.historyDone = false;
  assert.ok(s.fetchBefore("#r"));
  assert.deepEqual(s.outbox.splice(0), ["CHATHISTORY BEFORE #r msgid=m5 50"]);
  s.receive(":srv BATCH +b2 chathistory #r");
  s.receive("@batch=b2;msgid=m4;time=2024-01-01T00:04:00.000Z :bob!b@h PRIVMSG #r :n4");
  s.receive(":srv BATCH -b2");
  assert.equal(b.lines.find((l) => l.kind === "msg")!.text, "n4");
  assert.ok(b.historyDone);
  s.start();
  s.receive("CAP * LS :batch draft/chathistory");
  s.receive("CAP alice ACK :batch draft/chathistory");
  s.outbox.length = 0;
  // The JOIN that comes with the reconnect is newer than the gap: the gap starts before it.
  s.receive("@msgid=j2;time=2024-01-01T00:09:00.000Z :alice!a@h JOIN #r");
  s.fetchLatest("#r");
  assert.deepEqual(s.outbox.splice(0), ["CHATHISTORY AFTER #r msgid=m7 50"]);
  s.receive(":srv BATCH +b3 chathistory #r");
  s.receive("@batch=b3;msgid=m7;time=2024-01-01T00:07:00.000Z :bob!b@h PRIVMSG #r :n7");
  s.receive("@batch=b3;msgid=m8;time=2024-01-01T00:08:00.000Z :bob!b@h PRIVMSG #r :n8");
  s.receive(":srv BATCH -b3");
  assert.deepEqual(b.lines.filter((l) => l.kind === "msg").map((l) => l.text), ["n4", "n5", "n6", "n7", "n8"]);
  assert.equal(b.lines[b.lines.length - 1].kind, "join", "lines stay in time order");
});

test("session: members with multi-prefix, modes, nick changes, typing", () => {
  const s = registered();
  s.receive(":srv 005 alice PREFIX=(ov)@+ CHATHISTORY=100 :are supported");
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #r");
  s.receive(":srv 353 alice = #r :@+bob +carol alice");
  const b = s.buffer("#r")!;
  assert.equal(b.members.get("bob")!.prefixes, "@+");
  s.receive(":bob!b@h MODE #r -o+o bob carol");
  assert.equal(b.members.get("bob")!.prefixes, "+");
  assert.equal(b.members.get("carol")!.prefixes, "@+");
  s.receive(":carol!c@h NICK Caz");
  assert.equal(b.members.get("caz")!.nick, "Caz");
  s.receive("@+typing=active :bob!b@h TAGMSG #r", 1000);
  assert.deepEqual(s.typers(b), ["bob"]);
  s.tick(8000);
  assert.deepEqual(s.typers(b), []);
});

test("session: mentions, unread, encrypted messages shown once", () => {
  const s = inRoom();
  s.receive(":bob!b@h PRIVMSG #r :hey Alice, look");
  const b = s.buffer("#r")!;
  assert.ok(b.lines[b.lines.length - 1].mention);
  assert.equal(b.unread, 1);
  assert.equal(s.events.filter((e) => e.type === "notify").length, 1);
  const e2e = "1,alice,dev1,dev9,mid42,1,1,0,AAAA";
  s.receive(`@+chinwag.dev/e2e=${e2e} :bob!b@h PRIVMSG alice :[encrypted message — open it with chinwag chat]`);
  s.receive(`@+chinwag.dev/e2e=${e2e.replace("dev1", "dev2")} :bob!b@h PRIVMSG alice :[encrypted message — open it with chinwag chat]`);
  const q = s.buffer("bob")!;
  assert.equal(q.lines.length, 1);
  assert.equal(q.lines[0].kind, "e2e");
  assert.match(q.lines[0].text, /can't be read in the browser/);
});

test("parse: tags named __proto__ or constructor are tags, absent tags are absent", () => {
  const m = parse("@__proto__=x;constructor=y :bob!b@h PRIVMSG #r :hi")!;
  assert.equal(m.tags["__proto__"], "x");
  assert.equal(m.tags["constructor"], "y");
  assert.deepEqual(Object.keys(m.tags).sort(), ["__proto__", "constructor"]);
  const plain = parse(":bob!b@h PRIVMSG #r :hi")!;
  assert.equal(plain.tags["constructor"], undefined);
  assert.equal(plain.tags["toString"], undefined);
});

test("links: no user@host links, lookalike hosts shown as the browser loads them", () => {
  const links = (text: string) => formatMessage(text).filter((r) => r.href).map((r) => [r.text, r.href]);
  assert.deepEqual(links("pay at http://bank.example@evil.example/x now"), []);
  assert.equal(safeHref("https://user:pw@example.com/"), null);
  // A Cyrillic "а": the browser goes to the punycode host, so that is what the link says.
  assert.deepEqual(links("https://\u0430pple.com/login"), [["https://xn--pple-43d.com/login", "https://xn--pple-43d.com/login"]]);
  assert.deepEqual(links("https://example\u3002com/a"), [["https://example.com/a", "https://example.com/a"]]);
  // An ordinary link keeps its text.
  assert.deepEqual(links("see https://example.com/a?b=1"), [["https://example.com/a?b=1", "https://example.com/a?b=1"]]);
});

test("names: bidi overrides and controls are not shown, notifications neither", () => {
  assert.equal(shown("#\u202elapyap\u2066x\u0007"), "#lapyapx");
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #\u202elapyap");
  s.receive(":bob!b@h PRIVMSG #\u202elapyap :alice: hi");
  const n = s.events.find((e) => e.type === "notify") as { title: string; body: string };
  assert.equal(n.title, "bob in #lapyap");
});

test("session: malformed lines are dropped and the next one is read", () => {
  const s = inRoom();
  for (const bad of [":x JOIN", ":x PART", ":x KICK", ":x TOPIC", ":x NICK", ":srv 332 alice", ":srv 331 alice",
    ":srv 353 alice =", ":srv 330 alice", ":srv 301 alice", ":srv 322 alice", ":x ACCOUNT", ":srv E2E DEVICES",
    ":alice!a@h PRIVMSG", "BATCH", "BATCH -", "@batch=zz BATCH +", "x".repeat(70000)]) {
    assert.doesNotThrow(() => s.receive(bad), bad);
  }
  s.receive(":bob!b@h PRIVMSG #r :still here");
  assert.equal(s.buffer("#r")!.lines.at(-1)!.text, "still here");
  assert.ok(![...s.buffers.keys()].some((k) => k === "" || k === "undefined"), "no window for a missing name");
});

test("session: history answers fill only the conversation that asked", () => {
  const s = inRoom();
  s.fetchLatest("#r");
  s.receive(":srv BATCH +h1 chathistory #r");
  s.receive("@batch=h1;msgid=a1 :bob!b@h PRIVMSG #r :mine");
  s.receive("@batch=h1;msgid=a2 :bob!b@h PRIVMSG #other :not this room's");
  s.receive("@batch=h1;msgid=a3 :bob!b@h PRIVMSG alice :not a room's at all");
  s.receive(":srv BATCH -h1");
  assert.deepEqual(s.buffer("#r")!.lines.filter((l) => l.kind === "msg").map((l) => l.text), ["mine"]);
  assert.equal(s.buffer("bob"), undefined);
  // A page nobody asked for opens nothing and adds nothing.
  s.receive(":srv BATCH +h2 chathistory #evil");
  s.receive("@batch=h2;msgid=e1 :bob!b@h PRIVMSG #evil :hello");
  s.receive(":srv BATCH -h2");
  s.receive(":srv BATCH +h3 chathistory #r");
  s.receive("@batch=h3;msgid=e2 :bob!b@h PRIVMSG #r :unasked");
  s.receive(":srv BATCH -h3");
  assert.equal(s.buffer("#evil"), undefined);
  assert.ok(!s.buffer("#r")!.lines.some((l) => l.text === "unasked"));
  // A private conversation takes the two people's messages only.
  s.ensure("bob");
  s.fetchLatest("bob");
  s.receive(":srv BATCH +h4 chathistory bob");
  s.receive("@batch=h4;msgid=q1 :bob!b@h PRIVMSG alice :to me");
  s.receive("@batch=h4;msgid=q2 :alice!a@h PRIVMSG bob :to bob");
  s.receive("@batch=h4;msgid=q3 :carol!c@h PRIVMSG alice :carol's");
  s.receive("@batch=h4;msgid=q4 :bob!b@h PRIVMSG #r :in a room");
  s.receive(":srv BATCH -h4");
  assert.deepEqual(s.buffer("bob")!.lines.map((l) => l.text), ["to me", "to bob"]);
});

test("session: someone else's JOIN, TOPIC or names open no window; typing only from members", () => {
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":bob!b@h JOIN #nowhere");
  s.receive(":bob!b@h TOPIC #nowhere2 :t");
  s.receive(":srv 332 alice #nowhere3 :t");
  s.receive(":srv 353 alice = #nowhere4 :bob");
  s.receive(":bob!b@h PRIVMSG #nowhere5 :hi");
  assert.deepEqual([...s.buffers.keys()], ["*server*"]);
  s.receive(":alice!a@h JOIN #r");
  s.receive("@+typing=active :mallory!m@h TAGMSG #r", 1000);
  assert.deepEqual(s.typers(s.buffer("#r")!), []);
});

test("session: a multiline message in history is one line, and notifies no one", () => {
  const s = inRoom();
  s.fetchLatest("#r");
  s.events.length = 0;
  s.receive(":srv BATCH +h1 chathistory #r");
  s.receive("@batch=h1;msgid=m1;time=2024-01-01T00:01:00.000Z :bob!b@h BATCH +ml draft/multiline #r");
  s.receive("@batch=ml :bob!b@h PRIVMSG #r :alice: first");
  s.receive("@batch=ml;draft/multiline-concat :bob!b@h PRIVMSG #r : and more");
  s.receive("@batch=ml :bob!b@h PRIVMSG #r :second");
  s.receive("@batch=h1 BATCH -ml");
  s.receive("@batch=h1;msgid=m2;time=2024-01-01T00:02:00.000Z :bob!b@h PRIVMSG #r :after");
  s.receive(":srv BATCH -h1");
  const msgs = s.buffer("#r")!.lines.filter((l) => l.kind === "msg");
  assert.deepEqual(msgs.map((l) => [l.msgid, l.text]), [["m1", "alice: first and more\nsecond"], ["m2", "after"]]);
  assert.equal(msgs[0].time, Date.parse("2024-01-01T00:01:00.000Z"));
  assert.ok(!s.events.some((e) => e.type === "notify"), "old messages notify no one");
});

function multiline(value = "max-bytes=4096,max-lines=100"): Session {
  const s = new Session({ nick: "alice", mode: "guest", account: "", password: "" });
  s.start();
  s.receive(`CAP * LS :message-tags batch echo-message draft/multiline=${value}`);
  s.receive("CAP alice ACK :message-tags batch echo-message draft/multiline");
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #r");
  s.outbox.length = 0;
  return s;
}

test("multiline: several lines go as one draft/multiline batch when the server offers it", () => {
  const s = multiline();
  s.say("#r", "\nfirst line\n\nthird: after a blank\n");
  assert.deepEqual(s.outbox.splice(0), [
    "BATCH +ml1 draft/multiline #r",
    "@batch=ml1 PRIVMSG #r :first line",
    "@batch=ml1 PRIVMSG #r :",
    "@batch=ml1 PRIVMSG #r :third: after a blank",
    "BATCH -ml1",
  ]);
  s.say("#r", "just one");
  assert.deepEqual(s.outbox.splice(0), ["PRIVMSG #r :just one"]);
  // Without the capability, one message per line that is not blank.
  const plain = registered();
  plain.outbox.length = 0;
  plain.say("#r", "a\n\nb");
  assert.deepEqual(plain.outbox, ["PRIVMSG #r a", "PRIVMSG #r b"]);
  // The echo comes back as one message.
  s.receive("@msgid=x1 :alice!a@h BATCH +e1 draft/multiline #r");
  s.receive("@batch=e1 :alice!a@h PRIVMSG #r :first line");
  s.receive("@batch=e1 :alice!a@h PRIVMSG #r :second");
  s.receive("BATCH -e1");
  const last = s.buffer("#r")!.lines.at(-1)!;
  assert.deepEqual([last.msgid, last.text, last.self], ["x1", "first line\nsecond", true]);
});

test("multiline: the server's max-lines and max-bytes are kept, long lines continue with concat", () => {
  const s = multiline("max-bytes=40,max-lines=2");
  s.say("#r", "one\ntwo\nthree");
  assert.deepEqual(s.outbox.splice(0), [
    "BATCH +ml1 draft/multiline #r", "@batch=ml1 PRIVMSG #r one", "@batch=ml1 PRIVMSG #r two", "BATCH -ml1",
    "BATCH +ml2 draft/multiline #r", "@batch=ml2 PRIVMSG #r three", "BATCH -ml2",
  ]);
  const big = multiline("max-bytes=4096");
  const long = "word ".repeat(200).trim();
  big.say("#r", `${long}\nend`);
  const lines = big.outbox.splice(0);
  assert.equal(lines[0], "BATCH +ml1 draft/multiline #r");
  assert.equal(lines.at(-1), "BATCH -ml1");
  const body = lines.slice(1, -1).map((l) => parse(l)!);
  for (const m of body) assert.ok(new TextEncoder().encode(`PRIVMSG #r :${m.params[1]}\r\n`).length <= 512);
  assert.ok(body.length > 2 && body[1].tags["draft/multiline-concat"] === "", "a cut line continues");
  assert.equal(body.slice(0, -1).map((m) => m.params[1]).join(""), long, "nothing lost at the cuts");
  assert.equal(body.at(-1)!.tags["draft/multiline-concat"], undefined);
  // A paste too long for the server's flood budget is refused with a word.
  big.say("#r", "x".repeat(MAX_MESSAGE + 1));
  assert.deepEqual(big.outbox, []);
  assert.match(big.buffer("#r")!.lines.at(-1)!.text, /too long to send/);
  big.say("#r", `${"y".repeat(MAX_MESSAGE - 10)}\nz`);
  assert.ok(big.outbox.filter((l) => l.startsWith("BATCH +")).length <= 5);
  big.outbox.length = 0;
  // A server that does not say max-bytes gets separate lines.
  const vague = multiline("max-lines=5");
  vague.say("#r", "a\nb");
  assert.deepEqual(vague.outbox, ["PRIVMSG #r a", "PRIVMSG #r b"]);
});

test("session: a server that never answers SASL is dropped after REGISTER_TIMEOUT", () => {
  const s = new Session({ nick: "alice", mode: "login", account: "alice", password: "pw" });
  s.start(0);
  s.receive("CAP * LS :sasl=PLAIN", 10);
  s.receive("CAP alice ACK :sasl", 20);
  assert.equal(s.outbox.at(-1), "AUTHENTICATE PLAIN");
  assert.ok(!s.tick(REGISTER_TIMEOUT - 1));
  assert.ok(s.tick(REGISTER_TIMEOUT));
  assert.deepEqual(s.events.map((e) => e.type), ["stalled"]);
  s.tick(REGISTER_TIMEOUT * 2);
  assert.equal(s.events.length, 1, "said once");
  // The password answers the server's request once, and only the one the client asked for.
  s.start(100000);
  s.receive("AUTHENTICATE +");
  assert.ok(!s.outbox.some((l) => l.startsWith("AUTHENTICATE") && l !== "AUTHENTICATE PLAIN"), "unrequested");
  s.receive("CAP * LS :sasl=PLAIN");
  s.receive("CAP alice ACK :sasl");
  s.outbox.length = 0;
  s.receive("AUTHENTICATE +");
  s.receive("AUTHENTICATE +");
  assert.equal(s.outbox.length, 1);
  // Disconnected, nothing is awaited.
  s.disconnected();
  s.events.length = 0;
  s.tick(10 ** 9);
  assert.deepEqual(s.events, []);
});

test("backoff: grows while connections fail or drop at once, starts again after a good one", () => {
  const b = new Backoff(() => 0.5);
  assert.equal(b.lost(0), MIN_BACKOFF);
  assert.equal(b.lost(1000), 2 * MIN_BACKOFF);
  // Welcomed, then thrown out a second later: no reset to one second.
  b.healthy(5000);
  assert.equal(b.lost(6000), 4 * MIN_BACKOFF);
  for (let i = 0; i < 40; i++) b.lost(7000 + i);
  assert.equal(b.lost(8000), MAX_BACKOFF);
  b.healthy(10000);
  assert.equal(b.lost(10000 + STABLE_AFTER), MIN_BACKOFF);
  const jitter = [new Backoff(() => 0).lost(0), new Backoff(() => 0.999).lost(0)];
  assert.ok(jitter[0] >= MIN_BACKOFF * 0.75 && jitter[1] <= MIN_BACKOFF * 1.25 && jitter[0] < jitter[1]);
});

test("session: batches and private conversations from others are bounded", () => {
  const s = inRoom();
  for (let i = 0; i < MAX_OPEN_BATCHES; i++) s.receive(`:srv BATCH +open${i} netsplit`);
  // One more is refused, so its lines are not held back forever.
  s.receive(":srv BATCH +late netsplit");
  s.receive("@batch=late :bob!b@h PRIVMSG #r :seen");
  assert.equal(s.buffer("#r")!.lines.at(-1)!.text, "seen");
  for (let i = 0; i < MAX_QUERIES + 10; i++) s.receive(`:clone${i}!c@h PRIVMSG alice :hello ${i}`);
  assert.equal([...s.buffers.values()].filter((b) => b.kind === "query").length, MAX_QUERIES);
  assert.match(s.serverBuffer().lines.at(-1)!.text, /clone59 \(private.*\): hello 59/);
});

test("session: a nick called *server* never takes the server window's place", () => {
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":bob!b@h PRIVMSG alice :hi");
  s.receive(":bob!b@h NICK *server*");
  s.receive(":*Server*!x@h PRIVMSG alice :I am the server");
  assert.equal(s.serverBuffer().kind, "server");
  s.close("*server*");
  assert.equal(s.serverBuffer().kind, "server");
});

test("session: msgids that begin with an l are history anchors like any other", () => {
  const s = inRoom();
  s.fetchLatest("#r");
  s.receive(":srv BATCH +b chathistory #r");
  for (let i = 0; i < 50; i++) s.receive(`@batch=b;msgid=lk${i};time=2024-01-01T00:00:${String(i).padStart(2, "0")}.000Z :bob!b@h PRIVMSG #r :m${i}`);
  s.receive(":srv BATCH -b");
  s.outbox.length = 0;
  assert.ok(s.fetchBefore("#r"));
  assert.deepEqual(s.outbox, ["CHATHISTORY BEFORE #r msgid=lk0 50"]);
  s.receive("@msgid=lk49 :bob!b@h PRIVMSG #r :m49");
  assert.equal(s.buffer("#r")!.lines.filter((l) => l.text === "m49").length, 1, "a repeat is dropped");
});

test("scram: SHA-256, HMAC and PBKDF2 give the published vectors", () => {
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const utf8 = (t: string) => new TextEncoder().encode(t);
  assert.equal(hex(sha256(utf8("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(hex(sha256(utf8("a".repeat(1000)))), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
  assert.equal(hex(hmac(utf8("key"), utf8("The quick brown fox jumps over the lazy dog"))),
    "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
});

/** RFC 7677's example exchange (user "user", password "pencil"), as AUTHENTICATE lines. */
const RFC7677 = {
  nonce: "rOprNGfwEbeRWgbNEkqO",
  first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};
const b64 = (t: string) => btoa(t);

function scramSession(login: { password: string; scram?: ReturnType<typeof deriveKeys> }): Session {
  const s = new Session({ nick: "user", mode: "login", account: "user", ...login }, () => RFC7677.nonce);
  s.start(0);
  s.receive("CAP * LS :sasl=PLAIN,SCRAM-SHA-256");
  s.receive("CAP user ACK :sasl");
  return s;
}

test("sasl: SCRAM-SHA-256 when offered; remember me keeps its keys, never the password", () => {
  const s = scramSession({ password: "pencil" });
  assert.deepEqual(s.outbox.splice(0).slice(-1), ["AUTHENTICATE SCRAM-SHA-256"]);
  s.receive("AUTHENTICATE +");
  assert.deepEqual(s.outbox.splice(0), [`AUTHENTICATE ${b64(RFC7677.first)}`]);
  s.receive(`AUTHENTICATE ${b64(RFC7677.serverFirst)}`);
  assert.deepEqual(s.outbox.splice(0), [`AUTHENTICATE ${b64(RFC7677.final)}`]);
  s.receive(`AUTHENTICATE ${b64(RFC7677.serverFinal)}`);
  assert.deepEqual(s.outbox.splice(0), ["AUTHENTICATE +"]);
  s.receive(":srv 900 user user!u@h user :You are now logged in as user");
  const logged = s.events.find((e) => e.type === "loggedIn") as { scram: ReturnType<typeof deriveKeys> };
  assert.ok(logged.scram && !JSON.stringify(logged.scram).includes("pencil"));
  // The saved keys alone log in again, the same way.
  const again = scramSession({ password: "", scram: logged.scram });
  again.outbox.length = 0;
  again.receive("AUTHENTICATE +");
  again.receive(`AUTHENTICATE ${b64(RFC7677.serverFirst)}`);
  assert.deepEqual(again.outbox.slice(1), [`AUTHENTICATE ${b64(RFC7677.final)}`]);
  // A server that cannot prove it knows the account is left.
  again.outbox.length = 0;
  again.receive(`AUTHENTICATE ${b64("v=AAAA")}`);
  assert.deepEqual(again.outbox, ["AUTHENTICATE *"]);
  assert.ok(again.events.some((e) => e.type === "authFailed"));
  // Saved keys for another salt (the password was changed) cannot answer: log in again.
  const stale = scramSession({ password: "", scram: { ...logged.scram, salt: "AAAAAAAAAAAAAAAAAAAAAA==" } });
  stale.receive("AUTHENTICATE +");
  stale.receive(`AUTHENTICATE ${b64(RFC7677.serverFirst)}`);
  assert.equal(stale.outbox.at(-1), "AUTHENTICATE *");
  assert.match((stale.events.find((e) => e.type === "authFailed") as { text: string }).text, /log in again/);
});

test("sasl: PLAIN after a SCRAM refused before its proof, never after it", () => {
  const s = scramSession({ password: "pencil" });
  s.receive("AUTHENTICATE +");
  s.outbox.length = 0;
  s.receive(":srv 904 user :SASL authentication failed: no SCRAM credentials");
  assert.deepEqual(s.outbox.splice(0), ["AUTHENTICATE PLAIN"]);
  assert.ok(!s.events.some((e) => e.type === "authFailed"));
  const t = scramSession({ password: "wrong" });
  t.receive("AUTHENTICATE +");
  t.receive(`AUTHENTICATE ${b64(RFC7677.serverFirst)}`);
  t.outbox.length = 0;
  t.receive(":srv 904 user :SASL authentication failed");
  assert.deepEqual(t.outbox, []);
  assert.ok(t.events.some((e) => e.type === "authFailed"));
});

let failed = 0;
for (const [name, fn] of tests) {
  try {
    fn();
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}\n${(error as Error).stack}`);
  }
}
console.log(`${tests.length - failed}/${tests.length} passed`);
process.exit(failed ? 1 : 0);
