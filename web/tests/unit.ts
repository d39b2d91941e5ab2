// Unit tests of the client's sans-IO parts (IRC lines, formatting, the session), run by node:
// `npm test`. The browser tests (web/tests/*.mjs, driven by crates/chinwag/tests/web_*.rs)
// check what only a browser can.
import assert from "node:assert/strict";
import { build, parse } from "../src/irc";
import { formatMessage, parseFormatting, safeHref, stripFormatting } from "../src/format";
import { Session } from "../src/session";

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
  s.receive("CAP * LS :message-tags server-time echo-message batch multi-prefix draft/chathistory sasl");
  s.outbox.length = 0;
  s.receive("CAP alice ACK :message-tags server-time echo-message batch multi-prefix draft/chathistory" + (mode === "login" ? " sasl" : ""));
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
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #r");
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
  const s = registered();
  s.receive(":srv 001 alice :Welcome");
  s.receive(":alice!a@h JOIN #r");
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
