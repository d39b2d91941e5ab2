// Screenshots of the main screens for docs/web.md, desktop (1280×800) and phone (390×844), light
// and dark. Run by crates/chinwag/tests/web_screenshots.rs (ignored by default: it writes into
// docs/web/), with SCREENSHOT_DIR set.
import { check, DESKTOP, PHONE, run, step, User } from "./lib.mjs";

const dir = process.env.SCREENSHOT_DIR;
const room = "#rust";

await run(async (browser) => {
  check(dir, "SCREENSHOT_DIR is not set");
  const shot = (u, name) => u.page.screenshot({ path: `${dir}/${name}.png` });

  step("login screens");
  const login = await new User(browser, "login", DESKTOP).start();
  await login.page.getByLabel("Log in", { exact: true }).check();
  await login.page.getByLabel("Nick", { exact: true }).fill("alice");
  await shot(login, "login-desktop");
  await login.close();

  step("a room with a conversation");
  const people = {};
  for (const [nick, scheme] of [["alice", "light"], ["bob", "light"], ["carol", "dark"], ["dave", "light"]]) {
    const u = await new User(browser, nick, DESKTOP, scheme).start();
    await u.login(nick, "register", `${nick}-screenshot-password`);
    await u.open(room);
    people[nick] = u;
  }
  const { alice, bob, carol, dave } = people;
  await alice.say(`/topic Rust, async and \x02chinwag\x02 itself · be kind · https://www.rust-lang.org`);
  await alice.say(`/quote MODE ${room} +v bob`);
  const script = [
    [bob, "morning all! anyone tried the new web client yet?"],
    [carol, "yes, it's running on my phone right now"],
    [carol, "history loads as you scroll up, and it catches up after a reconnect"],
    [dave, "does it do \x02bold\x02, \x1ditalics\x1d and \x0304colours\x03?"],
    [alice, "it does, safely: everything is rendered as text, never as HTML"],
    [bob, "nice. the spec is at https://ircv3.net/specs/extensions/websocket"],
    [dave, "alice: can you review my PR later?"],
    [alice, "/me puts it on her list"],
  ];
  for (const [u, text] of script) {
    await u.say(text);
    await alice.waitLine(text.replace(/^\/me /, "").replace(/[\x02\x1d\x03]|\x0304/g, "").slice(0, 20));
  }
  await bob.say(`/msg alice see you at the meetup tonight?`);
  await dave.page.getByLabel("Message", { exact: true }).pressSequentially("sure, I'll");
  await alice.waitFor(() => document.querySelector("#typing").textContent.includes("dave"), "dave typing");
  await shot(alice, "room-desktop-light");
  await carol.waitLine("puts it on her list");
  await shot(carol, "room-desktop-dark");

  step("phone");
  const phone = await new User(browser, "erin", PHONE).start();
  await phone.login("erin");
  await phone.open(room);
  await phone.waitLine("puts it on her list");
  await shot(phone, "room-phone");
  await phone.page.getByRole("button", { name: "Show rooms and conversations" }).click();
  await phone.page.waitForTimeout(300);
  await shot(phone, "sidebar-phone");
  await phone.page.keyboard.press("Escape");
  await phone.close();
  const phoneLogin = await new User(browser, "login2", PHONE, "dark").start();
  await shot(phoneLogin, "login-phone-dark");
  await phoneLogin.close();

  step("room list");
  await alice.page.getByRole("button", { name: "Browse rooms" }).click();
  await alice.waitFor(() => document.querySelectorAll("#rooms-list li button").length >= 2, "rooms listed");
  await shot(alice, "rooms-desktop");
  await alice.page.keyboard.press("Escape");

  step("a private conversation with an E2E contact");
  const key = "A".repeat(43);
  await bob.say(`/quote E2E DEVICE laptop ${key} ${key} ${"A".repeat(86)}`);
  await bob.say(`/quote @+chinwag.dev/e2e=1,alice,dev1,laptop,m1,1,1,0,AAAA PRIVMSG alice :[encrypted message — open it with chinwag chat]`);
  await alice.open("bob");
  await alice.waitLine("Encrypted message");
  await alice.waitFor(() => !document.querySelector("#e2e-note").hidden, "the E2E note");
  await alice.say("sounds good, see you there");
  await alice.waitFor(() => document.querySelector("#prompt-dialog").open, "the send-in-clear question");
  await shot(alice, "e2e-warning-desktop");
  for (const u of Object.values(people)) await u.close();
});
