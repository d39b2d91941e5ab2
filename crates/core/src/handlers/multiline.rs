//! IRCv3 `draft/multiline`: one message of several lines, sent by a client as a batch
//! (`BATCH +ref draft/multiline <target>`, its PRIVMSG or NOTICE lines tagged `batch=ref`, then
//! `BATCH -ref`) and delivered as one.
//!
//! Lines are collected as they arrive ([`Server::collect_batch`], called for every line before
//! flood control): a batch's lines are one command, so they neither spend the client's budget
//! one by one nor wait in its RecvQ, which a long paste would overflow. What ends a batch (its
//! `BATCH -ref`, or a refusal) is put in the client's `batches_ended` and a `BATCH -ref` line is
//! admitted in its place, which runs through flood control and the RecvQ like any command, so
//! that the message (or the `FAIL`) comes in order with the client's other commands, under its
//! opening BATCH's label. A message's cost is charged when it runs.
//!
//! Bounds: a batch holds at most `limits.multiline_max_lines` lines and
//! `limits.multiline_max_bytes` bytes of text; one still open after `limits.multiline_timeout`
//! is dropped; a refused batch keeps only its reference, to drop the rest of its lines quietly
//! (at most `multiline_max_lines` more); at most [`MAX_WAITING`] ended batches wait for the
//! flood budget. Everything goes with the client when it disconnects.
//!
//! Delivery (`messaging.rs`, `broadcast.rs`): the message is stored once, with its lines joined
//! by `\n` (a `draft/multiline-concat` line joined to the previous one without one), and goes
//! out as one batch to clients with `draft/multiline` and `batch`, or line by line to others.

use std::time::Instant;

use chinwag_proto::{eq_fold, Message, ParseError, Tag};

use crate::broadcast::{CONCAT_TAG, MULTILINE};
use crate::config::Limits;
use crate::ids::ConnId;
use crate::server::Server;

/// Ended batches that may wait for the client's flood budget (each holds up to
/// `multiline_max_bytes` of text); one more and the client is dropped ("Excess flood"), as
/// for a RecvQ that overflows.
const MAX_WAITING: usize = 16;

/// A multiline batch a client has opened and not yet closed.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    /// The client's reference for it (`BATCH +ref`).
    reference: String,
    /// Where the message goes: every line must name it.
    target: String,
    /// `PRIVMSG` or `NOTICE`, as the first line has it; every line must have the same.
    command: Option<String>,
    /// Each line's text, and whether it continues the previous one.
    parts: Vec<(String, bool)>,
    /// The text's bytes so far, a line break counting one (as `max-bytes` counts them).
    bytes: usize,
    /// The opening BATCH's labeled-response label: the message or its refusal answers it.
    label: Option<String>,
    /// The opening BATCH's client-only tags, which belong to the whole message.
    tags: Vec<Tag>,
    opened: Instant,
    /// Refused already: its remaining lines are dropped without a word until it closes.
    failed: bool,
    /// Lines dropped since it was refused.
    dropped: usize,
}

/// How a batch ended, waiting in `Extra::batches_ended` for its `BATCH -ref` line to run.
#[derive(Debug)]
pub(crate) struct Ended {
    reference: String,
    outcome: Result<Assembled, Refusal>,
}

/// A well-formed multiline message.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub target: String,
    pub command: String,
    pub parts: Vec<(String, bool)>,
    pub tags: Vec<Tag>,
}

/// `FAIL BATCH <code> [context…] :<text>`.
#[derive(Debug)]
pub(crate) struct Refusal {
    code: &'static str,
    context: Vec<String>,
    text: String,
}

fn invalid(text: &str) -> Refusal {
    Refusal { code: "MULTILINE_INVALID", context: Vec::new(), text: text.to_owned() }
}

/// What one line does to the client's batch.
struct Step {
    /// The batch open after the line, if any.
    open: Option<Box<OpenBatch>>,
    /// A batch that ended with this line, and the label its answer carries.
    ended: Option<(Ended, Option<String>)>,
    /// The line is not the batch's: it runs as a command of its own.
    pass: bool,
}

impl Server {
    /// Takes `conn`'s line into its multiline batch if it belongs to one, opens or ends one;
    /// gives the line back if it is a command of its own. Only for registered clients with
    /// `draft/multiline` (and `batch`): anyone else's lines all run as commands.
    pub(crate) fn collect_batch(
        &mut self,
        conn: ConnId,
        parsed: Result<Message, ParseError>,
    ) -> Option<Result<Message, ParseError>> {
        let now = self.now.mono;
        let Some(client) = self.clients.get_mut(&conn) else { return Some(parsed) };
        if !client.registered || !client.caps.multiline() {
            return Some(parsed);
        }
        let open = client.existing_extra_mut().and_then(|e| e.batch.take());
        let step = step(open, &parsed, &self.cfg.limits, now);
        if !step.pass {
            // A line taken by the batch is activity all the same.
            client.last_active = now;
            client.ping_sent = None;
        }
        match step.open {
            Some(open) => client.extra_mut().batch = Some(open),
            None => client.tidy(),
        }
        if let Some((ended, label)) = step.ended {
            self.end_batch(conn, ended, label);
        }
        step.pass.then_some(parsed)
    }

    /// Queues what ended a batch and admits the `BATCH -ref` line that will answer it in turn.
    fn end_batch(&mut self, conn: ConnId, ended: Ended, label: Option<String>) {
        let mut line = Message::new("BATCH").with_param(format!("-{}", ended.reference));
        if let Some(label) = label {
            line = line.with_tag("label", label);
        }
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let waiting = &mut client.extra_mut().batches_ended;
        if waiting.len() >= MAX_WAITING {
            tracing::info!(%conn, ip = %client.info.ip, "dropping a flooding client: multiline messages piled up");
            self.begin(conn, None);
            self.close(conn, "Excess flood");
            self.finish();
            return;
        }
        waiting.push_back(ended);
        self.admit(conn, Ok(line));
    }

    /// Batches open past `limits.multiline_timeout` are dropped (from the tick).
    pub(crate) fn expire_batches(&mut self) {
        let (now, timeout) = (self.now.mono, self.cfg.limits.multiline_timeout);
        let expired: Vec<ConnId> = self
            .clients
            .values()
            .filter(|c| {
                let batch = c.extra().and_then(|e| e.batch.as_ref());
                batch.is_some_and(|b| now.saturating_duration_since(b.opened) >= timeout)
            })
            .map(|c| c.id)
            .collect();
        for conn in expired {
            let Some(client) = self.clients.get_mut(&conn) else { continue };
            let Some(batch) = client.existing_extra_mut().and_then(|e| e.batch.take()) else { continue };
            client.tidy();
            if batch.failed {
                continue;
            }
            let text = format!("The multiline batch was not closed within {} seconds", timeout.as_secs());
            let ended = Ended { reference: batch.reference, outcome: Err(invalid(&text)) };
            self.end_batch(conn, ended, batch.label);
        }
    }

    /// `BATCH -ref`: the answer to a batch that ended. Every `BATCH` line of a client with
    /// draft/multiline is collected, so one that runs here is the line `end_batch` admitted;
    /// anyone else is told to enable the capability first.
    pub(crate) fn handle_batch(&mut self, msg: &Message) {
        let reference = msg.params.first().and_then(|r| r.strip_prefix('-')).unwrap_or_default();
        let ended = self.cur_client_mut().and_then(|client| {
            let extra = client.existing_extra_mut()?;
            let matches = extra.batches_ended.front().is_some_and(|e| e.reference == reference);
            let ended = if matches { extra.batches_ended.pop_front() } else { None };
            client.tidy();
            ended
        });
        match ended.map(|e| e.outcome) {
            None => self.fail("BATCH", "MULTILINE_INVALID", &[], "Enable draft/multiline and batch to send a batch"),
            Some(Err(refusal)) => {
                let context: Vec<&str> = refusal.context.iter().map(String::as_str).collect();
                self.fail("BATCH", refusal.code, &context, &refusal.text);
            }
            Some(Ok(message)) => self.send_multiline(message),
        }
    }
}

/// What `parsed` does to the batch `open` (if any). Pure, so that each rule reads on its own.
fn step(open: Option<Box<OpenBatch>>, parsed: &Result<Message, ParseError>, limits: &Limits, now: Instant) -> Step {
    let msg = parsed.as_ref().ok();
    let tag = msg.and_then(|m| m.tag("batch"));
    let batch_command = msg.filter(|m| m.command.eq_ignore_ascii_case("BATCH"));
    let reference = batch_command.and_then(|m| m.params.first()).map(String::as_str);
    let label = || msg.and_then(|m| m.tag("label")).map(str::to_owned);
    let keep = |open: Box<OpenBatch>| Step { open: Some(open), ended: None, pass: false };
    match open {
        Some(mut open) if open.failed => {
            if reference.and_then(|r| r.strip_prefix('-')) == Some(open.reference.as_str()) {
                return Step { open: None, ended: None, pass: false };
            }
            if (tag.is_some() || batch_command.is_some()) && open.dropped < limits.multiline_max_lines {
                open.dropped += 1;
                return keep(open);
            }
            // It is over: the line is taken as if no batch were open.
            step(None, parsed, limits, now)
        }
        Some(mut open) => {
            if batch_command.is_some() {
                if reference.and_then(|r| r.strip_prefix('-')) == Some(open.reference.as_str()) {
                    let outcome = open.finish();
                    let ended = Ended { reference: std::mem::take(&mut open.reference), outcome };
                    return Step { open: None, ended: Some((ended, open.label)), pass: false };
                }
                return refuse(open, invalid("A multiline batch cannot hold another batch"));
            }
            match (tag, msg) {
                (Some(tag), Some(msg)) if tag == open.reference => match open.absorb(msg, limits) {
                    Ok(()) => keep(open),
                    Err(refusal) => refuse(open, refusal),
                },
                (Some(_), _) => refuse(open, invalid("A line of another batch came inside a multiline batch")),
                // Keeping the connection alive does not interrupt a message.
                (None, Some(msg)) if ["PING", "PONG"].iter().any(|c| msg.command.eq_ignore_ascii_case(c)) => {
                    Step { open: Some(open), ended: None, pass: true }
                }
                (None, _) => {
                    let refusal = invalid("Another command came before the multiline batch was closed");
                    let ended = Ended { reference: std::mem::take(&mut open.reference), outcome: Err(refusal) };
                    Step { open: None, ended: Some((ended, open.label)), pass: true }
                }
            }
        }
        None => {
            let Some(batch) = batch_command else {
                if tag.is_some() {
                    let refusal = invalid("No multiline batch with that reference is open");
                    let ended = Ended { reference: String::new(), outcome: Err(refusal) };
                    return Step { open: None, ended: Some((ended, label())), pass: false };
                }
                return Step { open: None, ended: None, pass: true };
            };
            let reference = reference.unwrap_or_default();
            let refused = |text: &str| {
                let name = reference.trim_start_matches(['+', '-']).to_owned();
                let ended = Ended { reference: name, outcome: Err(invalid(text)) };
                Step { open: None, ended: Some((ended, label())), pass: false }
            };
            let Some(name) = reference.strip_prefix('+') else {
                return refused("No multiline batch with that reference is open");
            };
            if batch.params.get(1).map(String::as_str) != Some(MULTILINE) {
                return refused("Only draft/multiline batches can be sent to this server");
            }
            let target = batch.params.get(2).map(String::as_str).unwrap_or_default();
            if name.is_empty() || target.is_empty() {
                return refused("A multiline batch needs a reference and a target");
            }
            let tags = batch.tags.iter().filter(|t| t.key.starts_with('+')).cloned().collect();
            keep(Box::new(OpenBatch {
                reference: name.to_owned(),
                target: target.to_owned(),
                command: None,
                parts: Vec::new(),
                bytes: 0,
                label: label(),
                tags,
                opened: now,
                failed: false,
                dropped: 0,
            }))
        }
    }
}

/// The batch is refused: the client is told now (in turn), and the rest of its lines dropped.
fn refuse(mut open: Box<OpenBatch>, refusal: Refusal) -> Step {
    open.failed = true;
    open.parts = Vec::new();
    let ended = Ended { reference: open.reference.clone(), outcome: Err(refusal) };
    let label = open.label.take();
    Step { open: Some(open), ended: Some((ended, label)), pass: false }
}

impl OpenBatch {
    /// One line of the batch, checked against the batch and the bounds.
    fn absorb(&mut self, msg: &Message, limits: &Limits) -> Result<(), Refusal> {
        let command = msg.command.to_ascii_uppercase();
        if command != "PRIVMSG" && command != "NOTICE" {
            return Err(invalid("A multiline batch holds PRIVMSG or NOTICE lines only"));
        }
        if self.command.as_ref().is_some_and(|c| *c != command) {
            return Err(invalid("A multiline batch cannot mix PRIVMSG and NOTICE"));
        }
        let target = msg.params.first().map(String::as_str).unwrap_or_default();
        if !eq_fold(target, &self.target) {
            return Err(Refusal {
                code: "MULTILINE_INVALID_TARGET",
                context: vec![self.target.clone(), target.to_owned()],
                text: "Every line of a multiline batch must go to the batch's target".to_owned(),
            });
        }
        let text = msg.params.get(1).map(String::as_str).unwrap_or_default();
        // A first line has nothing to continue.
        let concat = msg.tag(CONCAT_TAG).is_some() && !self.parts.is_empty();
        if concat && text.is_empty() {
            return Err(invalid("A line that continues the previous one cannot be blank"));
        }
        if self.parts.len() >= limits.multiline_max_lines {
            return Err(Refusal {
                code: "MULTILINE_MAX_LINES",
                context: vec![limits.multiline_max_lines.to_string()],
                text: "Multiline batch max-lines exceeded".to_owned(),
            });
        }
        let bytes = self.bytes + text.len() + usize::from(!self.parts.is_empty() && !concat);
        if bytes > limits.multiline_max_bytes {
            return Err(Refusal {
                code: "MULTILINE_MAX_BYTES",
                context: vec![limits.multiline_max_bytes.to_string()],
                text: "Multiline batch max-bytes exceeded".to_owned(),
            });
        }
        self.bytes = bytes;
        self.command = Some(command);
        self.parts.push((text.to_owned(), concat));
        Ok(())
    }

    /// The message, once its batch is closed: at least one line, and not only blank ones.
    fn finish(&mut self) -> Result<Assembled, Refusal> {
        if self.parts.iter().all(|(text, _)| text.is_empty()) {
            return Err(invalid("A multiline message needs a line that is not blank"));
        }
        Ok(Assembled {
            target: std::mem::take(&mut self.target),
            command: self.command.take().unwrap_or_else(|| "PRIVMSG".into()),
            parts: std::mem::take(&mut self.parts),
            tags: std::mem::take(&mut self.tags),
        })
    }
}

/// The message's text as history keeps it: lines joined by `\n`, a continuation joined to
/// the line before without one.
pub(crate) fn joined(parts: &[(String, bool)]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|(t, _)| t.len() + 1).sum());
    for (i, (part, concat)) in parts.iter().enumerate() {
        if i > 0 && !concat {
            text.push('\n');
        }
        text.push_str(part);
    }
    text
}

/// A stored message's lines (its text split at `\n`).
pub(crate) fn stored_lines(text: &str) -> Vec<(String, bool)> {
    text.split('\n').map(|line| (line.to_owned(), false)).collect()
}

/// `parts` with every line that is longer than `max` bytes cut into pieces that are not,
/// each further piece continuing the one before (`draft/multiline-concat`). A cut goes after
/// a space in the second half of the piece where there is one (so a client without the
/// capability sees whole words), else on a character boundary.
pub(crate) fn fit_lines(parts: Vec<(String, bool)>, max: usize) -> Vec<(String, bool)> {
    let max = max.max(4);
    let mut out = Vec::with_capacity(parts.len());
    for (text, concat) in parts {
        if text.len() <= max {
            out.push((text, concat));
            continue;
        }
        let mut rest = text.as_str();
        let mut first = true;
        while !rest.is_empty() {
            let mut cut = rest.len().min(max);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut < rest.len() {
                if let Some(space) = rest[..cut].rfind(' ').filter(|&at| at + 1 > cut / 2) {
                    cut = space + 1;
                }
            }
            out.push((rest[..cut].to_owned(), concat || !first));
            rest = &rest[cut..];
            first = false;
        }
    }
    out
}

/// Whether `replies` are exactly one draft/multiline batch (an echo), which takes a label on
/// its opening BATCH rather than inside a labeled-response batch.
pub(crate) fn is_one_multiline_batch(replies: &[Message]) -> bool {
    let (Some(first), Some(last)) = (replies.first(), replies.last()) else { return false };
    let opens = first.command == "BATCH"
        && first.params.get(1).map(String::as_str) == Some(MULTILINE)
        && first.params.first().and_then(|r| r.strip_prefix('+')).is_some_and(|r| {
            last.command == "BATCH" && last.params.first().and_then(|l| l.strip_prefix('-')) == Some(r)
        });
    opens && replies.len() >= 2 && replies[1..replies.len() - 1].iter().all(|m| m.tag("batch").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_after_a_space_into_continuations() {
        let parts = vec![("short".to_owned(), false), ("aaaa bbbb cccc dddd".to_owned(), false)];
        let fitted = fit_lines(parts, 10);
        assert_eq!(
            fitted,
            vec![("short".to_owned(), false), ("aaaa bbbb ".to_owned(), false), ("cccc dddd".to_owned(), true),]
        );
        assert_eq!(joined(&fitted), "short\naaaa bbbb cccc dddd");
    }

    #[test]
    fn a_word_longer_than_a_line_is_cut_on_a_character_boundary() {
        let fitted = fit_lines(vec![("ééééé".to_owned(), false)], 5);
        assert!(fitted.iter().all(|(t, _)| t.len() <= 5), "{fitted:?}");
        assert_eq!(joined(&fitted), "ééééé");
        assert!(fitted[1..].iter().all(|(_, concat)| *concat));
    }
}
