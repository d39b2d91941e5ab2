#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/parse and fuzz/corpus/core.

Seeds come from the shared parser vectors (crates/proto/tests/irc-parser-tests) and from a few
scripted sessions that reach the server core's deeper states (registration, rooms, SASL,
accounts, history, moderation, floods). Run it again after changing the vectors; file names are
content hashes, so unchanged seeds keep their names. Needs PyYAML (Debian: python3-yaml).
"""
import hashlib
import os
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "crates", "proto", "tests", "irc-parser-tests")


def vector_lines():
    lines = []
    split = yaml.safe_load(open(os.path.join(VECTORS, "msg-split.yaml"), encoding="utf-8"))
    lines += [t["input"] for t in split["tests"]]
    join = yaml.safe_load(open(os.path.join(VECTORS, "msg-join.yaml"), encoding="utf-8"))
    for t in join["tests"]:
        lines += t["matches"]
    return lines


def write(directory, data):
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def script(steps):
    """steps: (slot, line) to send; (slot, 'TICK', secs); (slot, 'RECONNECT'); (slot, 'ANSWER', ok)."""
    out = bytearray()
    for step in steps:
        slot = step[0]
        if len(step) == 2:
            out += bytes([slot]) + step[1].encode("utf-8")
        elif step[1] == "TICK":
            out += bytes([slot | (5 << 2), step[2]])
        elif step[1] == "RECONNECT":
            out += bytes([slot | (6 << 2)])
        else:
            out += bytes([slot | (7 << 2), 1 if step[2] else 0])
        out += b"\n"
    return bytes(out)


def register(slot, nick, caps=""):
    steps = []
    if caps:
        steps += [(slot, "CAP LS 302"), (slot, f"CAP REQ :{caps}")]
    steps += [(slot, f"NICK {nick}"), (slot, f"USER {nick} 0 * :{nick} real")]
    if caps:
        steps.append((slot, "CAP END"))
    return steps


ALL_CAPS = "message-tags echo-message labeled-response server-time account-tag extended-join away-notify batch"
PRELUDE = (
    register(0, "alice", ALL_CAPS)
    + register(1, "bob")
    + register(2, "carol", "sasl message-tags")
    + register(3, "dave")
    + [(s, "JOIN #general") for s in range(4)]
)

SESSIONS = [
    PRELUDE + [(0, "PRIVMSG #general :hello"), (1, "NOTICE alice :hi"), (0, "@label=x;+draft/reply=1 TAGMSG #general")],
    PRELUDE + [(0, "TOPIC #general :new topic"), (1, "PART #general :bye"), (2, "QUIT :gone"), (3, "AWAY :later")],
    PRELUDE + [(0, "JOIN #new"), (0, "MODE #new +ntikl key 3"), (1, "JOIN #new key"), (0, "MODE #new +b bob"),
               (0, "KICK #new bob :out"), (0, "INVITE bob #new"), (0, "MODE #new +o carol")],
    PRELUDE + [(0, "WHO #general"), (0, "WHO #general %tcuhnfdar,42"), (1, "WHOIS alice"), (1, "WHOWAS nobody"),
               (2, "ISON alice bob"), (3, "USERHOST alice bob"), (0, "LIST"), (0, "NAMES #general"), (0, "LUSERS"),
               (0, "MOTD"), (0, "VERSION"), (0, "TIME"), (0, "MONITOR + bob,carol"), (1, "QUIT")],
    PRELUDE + [(2, "AUTHENTICATE PLAIN"), (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "ANSWER", True),
               (3, "REGISTER * * long-enough-password"), (3, "ANSWER", True),
               (2, "PRIVMSG NickServ :IDENTIFY carol wrong"), (2, "ANSWER", False),
               (2, "NS INFO carol"), (2, "NS GHOST bob"), (2, "NS SET PASSWORD another-password"), (2, "ANSWER", True)],
    PRELUDE + [(0, "CHATHISTORY LATEST #general * 10"), (0, "ANSWER", True),
               (0, "CHATHISTORY TARGETS timestamp=2026-01-01T00:00:00.000Z timestamp=2027-01-01T00:00:00.000Z 5"),
               (0, "ANSWER", True)],
    PRELUDE + [(1, f"PRIVMSG #general :flood {i}") for i in range(40)] + [(0, "TICK", 3), (1, "PING :x")],
    PRELUDE + [(1, "NICK bob2"), (1, "NICK bob3"), (1, "NICK bob4"), (1, "NICK bob5"), (0, "TICK", 30), (1, "NICK Bob"),
               (3, "RECONNECT"), (3, "NICK alice"), (3, "NICK dave"), (3, "USER d 0 * :d"), (0, "TICK", 100)],
    PRELUDE + [(2, "AUTHENTICATE PLAIN"), (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "ANSWER", True),
               (3, "REGISTER * * long-enough-password"), (3, "ANSWER", True),
               (2, "E2E DEVICE laptop " + "A" * 43 + " " + "B" * 43 + " " + "C" * 86), (2, "ANSWER", True),
               (2, "E2E OTK " + " ".join(f"{k * 43}:{'S' * 86}" for k in "DEF")), (2, "ANSWER", True),
               (2, "E2E FALLBACK " + "G" * 43 + ":" + "S" * 86), (2, "ANSWER", False),
               (3, "E2E DEVICES carol"), (3, "ANSWER", True), (3, "E2E CLAIM carol laptop,phone"), (3, "ANSWER", True),
               (3, "@+chinwag.dev/e2e=1,carol,laptop,d1,m1,1,1,0,AAAA PRIVMSG carol :[encrypted message]"),
               (3, "@+chinwag.dev/e2e=1,dave,d2,d1,m1,1,1,0,AAAA PRIVMSG carol :[encrypted message]"),
               (2, "QUIT"), (3, "@+chinwag.dev/e2e=1,carol,laptop,d1,m2,1,1,1,AAAA PRIVMSG carol :[encrypted message]"),
               (3, "E2E REMOVE d2"), (3, "ANSWER", True)],
    # The review of issue #19: pipelined SASL with CAP END, offline pages and their PONG tokens,
    # CHATHISTORY as a guest on a registered nick, INVITE then a nick change, a member's INVITE
    # before +i, a room made again under an old name, DROP of a founder, a device published twice.
    [(2, "CAP LS 302"), (2, "CAP REQ :sasl batch draft/chathistory"), (2, "NICK carol"), (2, "USER c 0 * :c"),
     (2, "AUTHENTICATE PLAIN"), (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "CAP END"), (2, "ANSWER", True),
     (2, "ANSWER", True), (2, "PONG :chinwag-offline-1"), (2, "ANSWER", True), (2, "PONG :chinwag-offline-2"),
     (0, "NICK alice"), (0, "USER a 0 * :a"), (0, "PRIVMSG carol :hi"), (0, "QUIT")],
    PRELUDE + [(3, "REGISTER * * long-enough-password"), (3, "ANSWER", True), (3, "ANSWER", True), (3, "QUIT"),
               (3, "RECONNECT"), (3, "NICK dave"), (3, "USER d 0 * :d"), (3, "CHATHISTORY LATEST alice * 10"),
               (3, "CHATHISTORY LATEST #general * 10"), (3, "ANSWER", True), (1, "PRIVMSG dave :for the account")],
    PRELUDE + [(0, "JOIN #club"), (1, "JOIN #club"), (1, "INVITE carol #club"), (0, "MODE #club +il 2"),
               (2, "JOIN #club"), (0, "INVITE dave #club"), (3, "NICK dave2"), (3, "JOIN #club"), (3, "QUIT"),
               (0, "INVITE carol #club")],
    PRELUDE + [(0, "JOIN #gone"), (0, "PRIVMSG #gone :old"), (0, "PART #gone"), (0, "TICK", 2), (1, "JOIN #gone"),
               (1, "CHATHISTORY LATEST #gone * 10"), (1, "ANSWER", True),
               (1, "CHATHISTORY AFTER #gone timestamp=2020-01-01T00:00:00.000Z 10"), (1, "ANSWER", True),
               (1, "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 5"),
               (1, "ANSWER", True)],
    PRELUDE + [(2, "AUTHENTICATE PLAIN"), (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "ANSWER", True),
               (2, "ANSWER", True), (2, "JOIN #fort,#empty"), (2, "MODE #fort +i"), (2, "PART #empty"),
               (2, "NS DROP correct-horse"), (2, "ANSWER", True), (2, "QUIT"), (2, "RECONNECT"), (2, "NICK carol"),
               (2, "USER c 0 * :c"), (2, "REGISTER * * long-enough-password"), (2, "ANSWER", True), (2, "JOIN #fort")],
    PRELUDE + [(2, "AUTHENTICATE PLAIN"), (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "ANSWER", True),
               (2, "ANSWER", True)]
    + [step for _ in range(3) for step in [(2, "E2E DEVICE laptop " + "A" * 43 + " " + "B" * 43 + " " + "C" * 86),
                                           (2, "ANSWER", True), (2, "ANSWER", True)]]
    + [(2, "PONG :chinwag-offline-1")],
    [(0, "NICK x"), (0, "TICK", 61), (1, "CAP LS"), (1, "PASS alice:password"), (1, "NICK alice"), (1, "USER a 0 * :a"),
     (1, "ANSWER", False)],
    # Issue #20: read markers (loaded at login, set, synced, on JOIN; a guest's) and REDACT's two trips.
    PRELUDE + [(2, "CAP REQ :draft/read-marker draft/message-redaction"), (2, "AUTHENTICATE PLAIN"),
               (2, "AUTHENTICATE AGNhcm9sAGNvcnJlY3QgaG9yc2U="), (2, "ANSWER", True), (2, "ANSWER", True),
               (2, "ANSWER", True), (2, "MARKREAD #general"), (2, "MARKREAD #general timestamp=2026-06-01T00:00:00.000Z"),
               (2, "ANSWER", True), (2, "MARKREAD bob *"), (2, "JOIN #other"), (2, "PRIVMSG #general :oops"),
               (2, "REDACT #general 0000000001000000001 :typo"), (2, "ANSWER", True), (2, "ANSWER", True),
               (1, "MARKREAD #general timestamp=2026-06-01T00:00:00.000Z"), (1, "JOIN #other"),
               (1, "REDACT #general 1"), (1, "ANSWER", True), (2, "REDACT bob x"), (2, "ANSWER", False)],
]


def main():
    lines = vector_lines()
    for line in lines:
        write(os.path.join(ROOT, "fuzz", "corpus", "parse"), line.encode("utf-8"))
        # The core seeds send each vector as a registered client and as a stranger.
        write(os.path.join(ROOT, "fuzz", "corpus", "core"), script(PRELUDE + [(1, line), (3, "RECONNECT"), (3, line)]))
    for session in SESSIONS:
        write(os.path.join(ROOT, "fuzz", "corpus", "core"), script(session))


if __name__ == "__main__":
    main()
