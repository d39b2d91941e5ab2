// A browser user and an irssi user (real irssi in tmux, driven by
// crates/chinwag/tests/web_irssi.rs) exchange room and private messages.
import { ask, check, run, step, User } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const room = `#irc-${nonce}`;
const WEB = `web${nonce}`;
const IRSSI = process.env.IRSSI_NICK;

await run(async (browser) => {
  check(IRSSI, "IRSSI_NICK is not set");
  const web = await new User(browser, "web").start();
  await web.login(WEB);
  await web.open(room);

  step("irssi joins the room");
  await ask(`irssi-start ${room}`);
  await web.waitFor((n) => document.querySelector("#member-list").textContent.includes(n), "irssi in the member list", IRSSI);

  step("room messages both ways");
  await web.say(`hello irssi from the browser ${nonce}`);
  await ask(`irssi-sees hello irssi from the browser ${nonce}`);
  await ask(`irssi-says hello browser from irssi ${nonce}`);
  await web.waitLine(`hello browser from irssi ${nonce}`);
  await ask(`irssi-says /me waves ${nonce}`);
  await web.waitFor((t) => [...document.querySelectorAll("#log .line.action")].some((n) => n.textContent.includes(t)), "irssi's action", `waves ${nonce}`);

  step("private messages both ways");
  await web.say(`/msg ${IRSSI} private from the browser ${nonce}`);
  await ask(`irssi-query ${WEB}`);
  await ask(`irssi-sees private from the browser ${nonce}`);
  await ask(`irssi-says private from irssi ${nonce}`);
  await web.waitLine(`private from irssi ${nonce}`);
  check(await web.page.textContent("#title") === IRSSI, "the conversation with irssi is open");
  check(web.problems().length === 0, web.problems().join("\n"));
});
