// Two people in their browsers: register, log in (one remembered, one not), create and find a
// room, talk, see each other type, scroll back through a long history, and live through a
// server restart, getting what was said while they were away. Run by
// crates/chinwag/tests/web_chat.rs, which restarts the server when asked.
import { ask, check, run, step, User } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const A = `alice${nonce}`;
const B = `bob${nonce}`;
const room = `#web-${nonce}`;
const HISTORY = 130;

await run(async (browser) => {
  step("alice and bob register");
  let alice = await new User(browser, "alice").start();
  await alice.login(A, "register", "alice-secret-1");
  await alice.waitFor((a) => document.querySelector("#me").textContent === a, "alice's name in the sidebar", A);
  let bob = await new User(browser, "bob").start();
  await bob.login(B, "register", "bob-secret-1");
  for (const u of [alice, bob]) {
    await u.page.locator("#logout").click();
    await u.page.waitForSelector("#login-form", { state: "visible" });
  }

  step("they log in: alice asks to be remembered, bob does not");
  await alice.login(A, "login", "alice-secret-1", true);
  await bob.login(B, "login", "bob-secret-1", false);
  const saved = await alice.page.evaluate(() => localStorage.getItem("chinwag.login"));
  check(saved && JSON.parse(saved).account === A, `alice's login is remembered: ${saved}`);
  check(!saved.includes("alice-secret-1") && JSON.parse(saved).scram?.clientKey, `what is remembered is SCRAM keys, not the password: ${saved}`);
  check(await bob.page.evaluate(() => localStorage.getItem("chinwag.login")) === null, "bob's login is not kept");
  await alice.page.reload();
  await alice.waitFor(() => document.querySelector("#me-dot")?.className === "dot" && !document.querySelector("#app").hidden,
    "alice back in after a reload, from the remembered login");

  step("a wrong password is refused");
  const mallory = await new User(browser, "mallory").start();
  await mallory.page.getByLabel("Log in", { exact: true }).check();
  await mallory.page.getByLabel("Nick", { exact: true }).fill(A);
  await mallory.page.getByLabel("Password", { exact: true }).fill("not-her-password");
  await mallory.page.locator("#login-submit").click();
  await mallory.waitFor(() => !document.querySelector("#login").hidden && document.querySelector("#login-error").textContent.length > 0,
    "the login form again with an error");
  await mallory.close();

  step("alice creates a room, bob finds it");
  await alice.page.getByRole("button", { name: "Browse rooms" }).click();
  await alice.page.getByLabel("New room name").fill(room.slice(1));
  await alice.page.getByRole("button", { name: "Create / join" }).click();
  await alice.waitFor((r) => document.querySelector("#title").textContent === r, "alice in the new room", room);
  await alice.waitFor(() => [...document.querySelectorAll("#member-list .prefix")].some((n) => n.textContent === "@"),
    "alice is the room's operator (@)");
  await bob.page.getByRole("button", { name: "Browse rooms" }).click();
  await bob.page.getByLabel("Search rooms").fill(nonce);
  await bob.page.getByRole("button", { name: `Join ${room}` }).click();
  await bob.waitFor((r) => document.querySelector("#title").textContent === r, "bob in the room", room);
  await alice.waitFor(() => (b) => document.querySelector("#member-list").textContent.includes(b), "bob in alice's member list", B);

  step("they talk");
  await alice.say(`hello ${B}, this is \x02alice\x02 https://example.com/x`);
  await bob.waitLine(`hello ${B}, this is alice`);
  const link = bob.page.locator("#log a.link").last();
  check(await link.getAttribute("rel") === "noopener noreferrer", "links open with rel=noopener noreferrer");
  check(await link.getAttribute("href") === "https://example.com/x", "the link goes where the text says");
  check(await bob.page.locator("#log .line.mention").count() > 0, "a line naming bob is highlighted for bob");
  await bob.say(`hi ${A}!`);
  await alice.waitLine(`hi ${A}!`);

  step("a message of several lines goes as one (draft/multiline)");
  await alice.say("first of three\nsecond of three\n\nthird after a blank");
  for (const u of [bob, alice]) {
    await u.waitLine("third after a blank");
    const shape = await u.page.evaluate(() => [...document.querySelectorAll("#log .line .text")]
      .filter((n) => n.textContent.includes("of three")).map((n) => [n.textContent, n.querySelectorAll("br").length]));
    check(JSON.stringify(shape) === JSON.stringify([["first of threesecond of threethird after a blank", 3]]),
      `${u.name} sees one message with its line breaks: ${JSON.stringify(shape)}`);
  }

  step("typing indicators");
  const box = bob.page.getByLabel("Message", { exact: true });
  await box.pressSequentially("I am typi");
  await alice.waitFor((b) => document.querySelector("#typing").textContent === `${b} is typing…`, "bob is typing… at alice", B);
  await box.fill("");
  await box.press("Backspace");
  await alice.waitFor(() => document.querySelector("#typing").textContent === "", "the typing notice gone when bob clears his text");

  step("E2E: an encrypted message shows as such, and bob is asked before writing in clear to alice");
  const key = "A".repeat(43);
  await alice.say(`/quote E2E DEVICE webtest ${key} ${key} ${"A".repeat(86)}`);
  await alice.say(`/quote @+chinwag.dev/e2e=1,${B},dev1,webtest,m1,1,1,0,AAAA PRIVMSG ${B} :[encrypted message — open it with chinwag chat]`);
  await bob.waitFor((a) => [...document.querySelectorAll("#buffers .buffer-btn")].some((n) => n.getAttribute("aria-label") === `${a}, 1 unread, 1 for you`),
    "the encrypted message counted as unread", A);
  await bob.open(A);
  await bob.waitLine("Encrypted message: it can't be read in the browser");
  await bob.waitFor(() => !document.querySelector("#e2e-note").hidden, "the note that alice uses end-to-end encryption");

  step("unread counts and private messages");
  await bob.say("a private word");
  await bob.waitFor(() => document.querySelector("#prompt-dialog").open, "the question before sending in clear");
  check((await bob.page.textContent("#prompt-title")).includes("in clear"), "the question says the message goes in clear");
  await bob.page.getByRole("button", { name: "Send in clear" }).click();
  await alice.waitFor((b) => [...document.querySelectorAll("#buffers .buffer-btn")].some((n) => n.getAttribute("aria-label") === `${b}, 1 unread, 1 for you`),
    "an unread count on alice's conversation with bob", B);
  await alice.open(B);
  await alice.waitLine("a private word");
  await alice.say("private reply");
  await bob.waitLine("private reply");
  await bob.open(room);

  step(`a long history: ${HISTORY} messages`);
  await alice.open(room);
  for (let i = 1; i <= HISTORY; i++) await alice.say(`hist ${i}`);
  await alice.waitLine(`hist ${HISTORY}`);
  const carol = await new User(browser, "carol", undefined, "dark", "Pacific/Auckland").start();
  await carol.login(`carol${nonce}`.slice(0, 20));
  await carol.open(room);
  await carol.waitLine(`hist ${HISTORY}`, "the latest messages when carol opens the room");
  const first = await carol.lineTexts();
  check(!first.includes("hist 1"), "only the last page comes first");
  for (let i = 0; i < 10 && !(await carol.lineTexts()).includes("hist 1"); i++) {
    await carol.page.locator("#log").evaluate((n) => { n.scrollTop = 0; });
    await carol.page.waitForTimeout(400);
  }
  const all = (await carol.lineTexts()).filter((t) => t.startsWith("hist "));
  check(all.length === HISTORY, `scrolling back loads all ${HISTORY} messages once each, in order (got ${all.length})`);
  const wrong = all.findIndex((t, i) => t !== `hist ${i + 1}`);
  check(wrong < 0, `in order (from the ${wrong + 1}th: ${all.slice(Math.max(wrong - 2, 0), wrong + 5).join(", ")})`);
  await carol.waitFor(() => document.querySelector(".history-note").textContent.includes("beginning"), "the beginning of the history");
  const [iso, shown] = await carol.page.$eval("#log .line.msg time", (t) => [t.dateTime, t.textContent]);
  const local = new Intl.DateTimeFormat("en-US", { hour: "2-digit", minute: "2-digit", timeZone: "Pacific/Auckland" }).format(new Date(iso));
  check(shown === local, `server-time ${iso} shown in carol's time zone (Pacific/Auckland) as ${local}, not ${shown}`);
  await carol.close();

  step("the server restarts; what was said meanwhile arrives");
  await ask(`restart ${room}`);
  for (const u of [alice, bob]) {
    await u.waitFor(() => document.querySelector("#me-dot").className === "dot", `${u.name} connected again`, null, 60000);
    await u.open(room);
    for (let i = 1; i <= 3; i++) await u.waitLine(`said during the gap ${i}`, `gap message ${i} at ${u.name}`);
    const gap = (await u.lineTexts()).filter((t) => t.startsWith("said during the gap"));
    check(gap.length === 3, `${u.name} got each gap message once (${gap.join(" | ")})`);
  }
  await alice.waitFor((a) => document.querySelector("#me").textContent === a, "alice logged in again after the restart", A);
  await bob.say("after the restart");
  await alice.waitLine("after the restart");

  for (const u of [alice, bob]) check(u.problems().length === 0, `${u.name}: ${u.problems().join("\n")}`);
  await alice.close();
  await bob.close();
});
