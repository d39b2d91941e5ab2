// Joining as a guest: the Guest tab with a nick lands in #general, where the guest and a
// registered user talk both ways; a nick someone already uses is refused in the form with a
// clear message (not a quiet nick_), and another nick then gets in. Run by
// crates/chinwag/tests/web_features.rs.
import { check, run, step, User } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const GUEST = `guest${nonce}`;
const MEMBER = `member${nonce}`;

await run(async (browser) => {
  step("a registered user is in #general");
  const member = await new User(browser, "member").start();
  await member.login(MEMBER, "register", "member-secret-1");
  await member.open("#general");

  step("a guest joins with a nick and lands in #general");
  const guest = await new User(browser, "guest").start();
  check(await guest.page.getByLabel("Guest", { exact: true }).isChecked(), "Guest is the form's default");
  check(await guest.page.locator("#password-field").isHidden(), "a guest is not asked for a password");
  await guest.login(GUEST, "guest");
  await guest.waitFor(() => document.querySelector("#title")?.textContent === "#general", "the guest in #general");
  await guest.waitFor((g) => document.querySelector("#me")?.textContent === g, "the guest's own nick in the sidebar", GUEST);
  check(await guest.page.evaluate(() => document.querySelector("#me").dataset.account) === "", "the guest is not logged in");
  await member.waitFor((g) => document.querySelector("#member-list").textContent.includes(g), "the guest in the member's list", GUEST);

  step("they talk both ways");
  await guest.say(`hello from a guest ${nonce}`);
  await member.waitLine(`hello from a guest ${nonce}`);
  await member.say(`welcome ${GUEST}`);
  await guest.waitLine(`welcome ${GUEST}`);

  step("a second guest asking for a taken nick is told so in the form");
  const late = await new User(browser, "late").start();
  await late.page.getByLabel("Guest", { exact: true }).check();
  await late.page.getByLabel("Nick", { exact: true }).fill(GUEST);
  await late.page.locator("#login-submit").click();
  await late.waitFor(() => !document.querySelector("#login").hidden && /taken/.test(document.querySelector("#login-error").textContent),
    "the login form again, saying the nick is taken");
  const error = await late.page.textContent("#login-error");
  check(error.includes(GUEST), `the error names the nick: ${error}`);
  check(await late.page.locator("#app").isHidden(), "the chat is not shown under a nick the user did not choose");
  check(!(await member.page.locator("#member-list").textContent()).includes(`${GUEST}_`), "no quiet nick_ joined");

  step("another nick gets in");
  await late.login(`late${nonce}`, "guest");
  await late.waitFor(() => document.querySelector("#title")?.textContent === "#general", "the second guest in #general");
  await late.waitFor(() => document.querySelector("#login-error").textContent === "", "the error gone");
  for (const u of [member, guest, late]) check(u.problems().length === 0, `${u.name}: ${u.problems().join("\n")}`);
});
