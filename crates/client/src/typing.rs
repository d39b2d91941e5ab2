//! When to send `+typing` notifications, by the IRCv3 typing spec's timing: `active` at most
//! once every [`ACTIVE_REPEAT`] while keys are pressed (receivers forget an `active` after
//! 6 s), `paused` once the input has sat unchanged for [`PAUSE_AFTER`], `done` when the input
//! is cleared without sending. A sent message needs no `done`: receivers clear the indicator
//! when the message arrives. Sans-IO: the caller passes the time and sends what comes back.

use std::time::{Duration, Instant};

use crate::command::TypingState;

/// `active` is repeated no more often than this while typing goes on.
pub const ACTIVE_REPEAT: Duration = Duration::from_secs(3);
/// Input unchanged this long is `paused`.
pub const PAUSE_AFTER: Duration = Duration::from_secs(5);

/// The typing state we last told the current conversation.
#[derive(Debug, Default, Clone)]
pub struct TypingSender {
    /// What we last sent, and when.
    sent: Option<(TypingState, Instant)>,
    /// When the input last changed.
    last_edit: Option<Instant>,
}

impl TypingSender {
    /// The input changed; `empty` says whether it is now empty.
    pub fn edited(&mut self, now: Instant, empty: bool) -> Option<TypingState> {
        if empty {
            self.last_edit = None;
            return match self.sent.take() {
                Some((TypingState::Active | TypingState::Paused, _)) => Some(TypingState::Done),
                _ => None,
            };
        }
        self.last_edit = Some(now);
        match self.sent {
            Some((TypingState::Active, at)) if now.saturating_duration_since(at) < ACTIVE_REPEAT => None,
            _ => {
                self.sent = Some((TypingState::Active, now));
                Some(TypingState::Active)
            }
        }
    }

    /// The message was sent (or the conversation changed): start over, nothing to send.
    pub fn reset(&mut self) {
        *self = TypingSender::default();
    }

    /// Timers: `paused` once the input has been still for a while.
    pub fn tick(&mut self, now: Instant) -> Option<TypingState> {
        let edit = self.last_edit?;
        if matches!(self.sent, Some((TypingState::Active, _))) && now.saturating_duration_since(edit) >= PAUSE_AFTER {
            self.sent = Some((TypingState::Paused, now));
            return Some(TypingState::Paused);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_spec_timing() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = TypingSender::default();
        assert_eq!(s.edited(at(0), false), Some(TypingState::Active));
        assert_eq!(s.edited(at(1000), false), None);
        assert_eq!(s.tick(at(2000)), None);
        assert_eq!(s.edited(at(3000), false), Some(TypingState::Active));
        assert_eq!(s.tick(at(7999)), None);
        assert_eq!(s.tick(at(8000)), Some(TypingState::Paused));
        assert_eq!(s.tick(at(9000)), None);
        assert_eq!(s.edited(at(9500), false), Some(TypingState::Active));
        assert_eq!(s.edited(at(9600), true), Some(TypingState::Done));
        assert_eq!(s.edited(at(9700), true), None);
        assert_eq!(s.edited(at(9800), false), Some(TypingState::Active));
        s.reset();
        assert_eq!(s.tick(at(20_000)), None);
    }
}
