// No XSS: an attacker sends every nasty payload we know through every field a victim's page
// shows (messages, actions, notices, private messages, nicks, topics, room names, real names,
// away messages, part/quit/kick reasons, tags), and the victim's DOM must hold only the
// client's own elements, no event handler attributes, no link but http(s), nothing set by a
// payload, and no alert/confirm/prompt. The payloads must show as the text they are. Run by
// crates/chinwag/tests/web_xss.rs.
import { check, run, step, User } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const room = `#xss-${nonce}`;
const VICTIM = `victim${nonce}`;
const ATTACKER = `evil${nonce}`;

/** Each sets window.__xss or fires a dialog if it ever runs. */
const PAYLOADS = [
  `<script>window.__xss=1;alert(1)</script>`,
  `<img src=x onerror="window.__xss=2;alert(2)">`,
  `<svg onload="window.__xss=3;alert(3)"><script>alert(3)</script></svg>`,
  `<iframe src="javascript:alert(4)"></iframe>`,
  `<a href="javascript:window.__xss=5">click me</a>`,
  `javascript:alert(6) JaVaScRiPt:alert(6) data:text/html,<script>alert(6)</script>`,
  `http://example.com/"><script>alert(7)</script> https://x.test/' onmouseover='alert(7)`,
  `\x02<b onmouseover=alert(8)>\x02\x0304,01<i onclick=alert(8)>red</i>\x0f\x1d<u>\x1d\x03`,
  `\u202egnp.exe\u202c \u2066<script>alert(9)</script>\u2069 \u200f\u200e`,
  `&lt;script&gt;alert(10)&lt;/script&gt; &#x3C;img src=x onerror=alert(10)&#x3E;`,
  `{{constructor.constructor('alert(11)')()}} \${alert(11)} <style>*{display:none}</style>`,
  `<math><mtext><table><mglyph><style><img src=x onerror=alert(12)>`,
  `<details open ontoggle=alert(13)> <body onload=alert(13)> <object data="javascript:alert(13)">`,
  "A".repeat(380) + "<script>alert(14)</script>",
];

/** The elements the client itself uses; anything else in the DOM came from a payload. */
const ALLOWED = ["html", "head", "meta", "title", "link", "script", "body", "div", "form", "h1", "h2", "h3", "p",
  "label", "input", "span", "small", "button", "aside", "nav", "main", "header", "svg", "path", "ul", "li",
  "textarea", "dialog", "time", "a"];

async function inspect(user, where) {
  const bad = await user.page.evaluate((allowed) => {
    const found = [];
    for (const n of document.querySelectorAll("*")) {
      const tag = n.tagName.toLowerCase();
      if (!allowed.includes(tag)) found.push(`<${tag}>`);
      if (tag === "script" && n.getAttribute("src") !== "app.js") found.push("a script that is not app.js");
      if ((tag === "svg" && !n.classList.contains("ic")) || (tag === "path" && !n.closest("svg.ic"))) found.push(`foreign <${tag}>`);
      for (const a of n.attributes) {
        if (/^on/i.test(a.name)) found.push(`${tag}[${a.name}]`);
        if (a.name === "style" && /url\(|expression|javascript/i.test(a.value)) found.push(`${tag}[style=${a.value}]`);
      }
      if (tag === "a" && !/^https?:\/\//.test(n.href)) found.push(`a link to ${n.href}`);
      if (tag === "a" && (n.rel !== "noopener noreferrer" || n.target !== "_blank")) found.push(`a link without rel/target: ${n.outerHTML.slice(0, 80)}`);
    }
    if (window.__xss) found.push(`window.__xss = ${window.__xss}`);
    // Bidi overrides and isolates are dropped wherever network text shows: in messages, and in
    // names (sidebar, header, member list, room list, labels, tooltips, the page's title).
    const bidi = /[\u202a-\u202e\u2066-\u2069]/;
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      if (bidi.test(t.data)) found.push(`a bidi override in ${t.parentElement?.id || t.parentElement?.className}: ${JSON.stringify(t.data.slice(0, 40))}`);
    }
    for (const n of document.querySelectorAll("[title], [aria-label], [placeholder]")) {
      for (const a of ["title", "aria-label", "placeholder"]) if (bidi.test(n.getAttribute(a) ?? "")) found.push(`a bidi override in ${a}`);
    }
    if (bidi.test(document.title)) found.push("a bidi override in the page's title");
    return found;
  }, ALLOWED);
  check(bad.length === 0, `${where}: injected into the DOM: ${bad.join(", ")}`);
  check(user.dialogs.length === 0, `${where}: a dialog fired: ${user.dialogs.join(" | ")}`);
}

await run(async (browser) => {
  const evil = await new User(browser, "attacker").start();
  await evil.login(ATTACKER);
  await evil.open(room);
  const victim = await new User(browser, "victim").start();
  await victim.login(VICTIM);
  await victim.open(room);
  await evil.waitFor((v) => document.querySelector("#member-list").textContent.includes(v), "the victim in the room", VICTIM);
  const quote = (line) => evil.say(`/quote ${line}`);

  step("messages, actions, notices, topics, real names in the room");
  // The real name shows as the member's tooltip; it may hold bidi overrides (room names may not).
  await quote(`SETNAME :${PAYLOADS[1]} ${PAYLOADS[8]}`);
  for (const p of PAYLOADS) {
    await quote(`PRIVMSG ${room} :${p}`);
    await quote(`PRIVMSG ${room} :\x01ACTION ${p}\x01`);
    await quote(`NOTICE ${room} :${p}`);
  }
  await quote(`TOPIC ${room} :${PAYLOADS[2]} ${PAYLOADS[7]}`);
  await quote(`@+typing=${encodeURIComponent(PAYLOADS[0])};+chinwag.dev/e2e=${encodeURIComponent(PAYLOADS[1])} PRIVMSG ${room} :${PAYLOADS[3]}`);
  await quote(`PRIVMSG ${room} :last-room-payload`);
  await victim.waitLine("last-room-payload");
  await victim.waitLine("<script>window.__xss=1;alert(1)</script>", "the script payload shown as text");
  await victim.waitFor(() => document.querySelector("#topic").textContent.includes("<svg onload"), "the topic shown as text");
  await inspect(victim, "the room");
  // Hovering and focusing everything must not run anything either.
  for (const n of await victim.page.locator("#log .line").all()) await n.hover({ timeout: 2000 }).catch(() => {});
  await inspect(victim, "the room after hovering");

  step("private messages, notices and away messages");
  for (const p of PAYLOADS) await quote(`PRIVMSG ${VICTIM} :${p}`);
  await quote(`NOTICE ${VICTIM} :${PAYLOADS[4]}`);
  await quote(`AWAY :${PAYLOADS[1]} ${PAYLOADS[0]}`);
  await quote(`PRIVMSG ${VICTIM} :last-private-payload`);
  await victim.open(ATTACKER);
  await victim.waitLine("last-private-payload");
  await victim.say("are you there?");
  await victim.waitLine("is away: <img", "the away message shown as text");
  await inspect(victim, "the private conversation");

  step("room names and topics in the room list");
  const rooms = [`#<img/src=x/onerror=alert(20)>${nonce}`, `#<script>alert(21)</script>${nonce}`, `#"onmouseover=alert(22)${nonce}`, `#\u202e${nonce}`];
  for (const r of rooms) {
    await quote(`JOIN ${r}`);
    await quote(`TOPIC ${r} :${PAYLOADS[2]}`);
  }
  await quote(`PRIVMSG ${VICTIM} :rooms-made`);
  await victim.waitLine("rooms-made");
  await victim.page.getByRole("button", { name: "Browse rooms" }).click();
  await victim.page.getByLabel("Search rooms").fill(nonce);
  await victim.waitFor(() => document.querySelectorAll("#rooms-list li button").length >= 2, "the room list with the attacker's rooms");
  await inspect(victim, "the room list");
  const joinable = victim.page.locator("#rooms-list li button");
  for (let i = 0; i < await joinable.count(); i++) {
    await victim.page.getByRole("button", { name: "Browse rooms" }).click().catch(() => {});
    await victim.page.getByLabel("Search rooms").fill(nonce).catch(() => {});
    await victim.waitFor(() => document.querySelectorAll("#rooms-list li button").length >= 2, "the room list again");
    await joinable.nth(i).click();
    await victim.page.waitForTimeout(300);
    await inspect(victim, `a room with a nasty name (#${i})`);
  }
  await victim.page.keyboard.press("Escape");

  step("nicks, part, quit and kick reasons");
  await victim.open(room);
  for (const n of ["<svg/onload=alert(30)>", "a\"onclick=alert(31)", `x{|}^\`${nonce.slice(0, 3)}`]) await quote(`NICK ${n}`);
  await quote(`KICK ${room} ${VICTIM} :${PAYLOADS[1]}`);
  await victim.waitFor(() => [...document.querySelectorAll("#log .line .text")].some((n) => n.textContent.includes("was kicked by")), "the kick");
  await victim.say(`/join ${room}`);
  await evil.say(`/quote PART ${room} :${PAYLOADS[0]}`);
  await victim.waitFor(() => [...document.querySelectorAll("#log .line .text")].some((n) => /left \(<script>/.test(n.textContent)), "the part with its reason as text");
  await evil.say(`/quote QUIT :${PAYLOADS[2]}`);
  await victim.page.waitForTimeout(500);
  for (const name of [room, "*server*"]) {
    if (name === "*server*") await victim.page.locator("#buffers .buffer-btn").first().click();
    else await victim.open(name);
    await inspect(victim, `after nicks and reasons in ${name}`);
  }
  check(victim.problems().length === 0, `victim: ${victim.problems().join("\n")}`);
});
