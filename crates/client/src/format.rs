//! IRC text formatting (bold `^B`, italics `^]`, underline `^_`, strikethrough `^^`, monospace
//! `^Q`, reverse `^V`, colours `^C` with `fg[,bg]` and hex `^D`, reset `^O`) as the de facto
//! standard describes it (<https://modern.ircdocs.horse/formatting>): [`segments`] cuts a text
//! into runs with their [`Format`], for a front end that draws styles; [`strip_formatting`]
//! drops the codes, for one that cannot (scriptable mode).
//!
//! Only the formatting codes are consumed here. Any other control character stays in the text
//! for [`crate::neutralise`] to show as a stand-in, so the order is always: formatting first,
//! then neutralising what is left.

use std::borrow::Cow;

const BOLD: char = '\u{02}';
const COLOUR: char = '\u{03}';
const HEX_COLOUR: char = '\u{04}';
const RESET: char = '\u{0f}';
const MONOSPACE: char = '\u{11}';
const REVERSE: char = '\u{16}';
const ITALIC: char = '\u{1d}';
const STRIKETHROUGH: char = '\u{1e}';
const UNDERLINE: char = '\u{1f}';
/// The colour code that means "the terminal's default".
const DEFAULT_COLOUR: u8 = 99;

/// A colour as IRC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// One of the 99 numbered colours (0–15 the classic ones, 16–98 the extended palette).
    Irc(u8),
    /// A `^D` hex colour.
    Rgb(u8, u8, u8),
}

/// The RGB value of extended colour `16 + i` (<https://modern.ircdocs.horse/formatting#colors-16-98>).
pub const EXTENDED: [u32; 83] = [
    0x470000, 0x472100, 0x474700, 0x324700, 0x004700, 0x00472c, 0x004747, 0x002747, 0x000047, 0x2e0047, 0x470047,
    0x47002a, 0x740000, 0x743a00, 0x747400, 0x517400, 0x007400, 0x007449, 0x007474, 0x004074, 0x000074, 0x4b0074,
    0x740074, 0x740045, 0xb50000, 0xb56300, 0xb5b500, 0x7db500, 0x00b500, 0x00b571, 0x00b5b5, 0x0063b5, 0x0000b5,
    0x7500b5, 0xb500b5, 0xb5006b, 0xff0000, 0xff8c00, 0xffff00, 0xb2ff00, 0x00ff00, 0x00ffa0, 0x00ffff, 0x008cff,
    0x0000ff, 0xa500ff, 0xff00ff, 0xff0098, 0xff5959, 0xffb459, 0xffff71, 0xcfff60, 0x6fff6f, 0x65ffc9, 0x6dffff,
    0x59b4ff, 0x5959ff, 0xc459ff, 0xff66ff, 0xff59bc, 0xff9c9c, 0xffd39c, 0xffff9c, 0xe2ff9c, 0x9cff9c, 0x9cffdb,
    0x9cffff, 0x9cd3ff, 0x9c9cff, 0xdc9cff, 0xff9cff, 0xff94d3, 0x000000, 0x131313, 0x282828, 0x363636, 0x4d4d4d,
    0x656565, 0x818181, 0x9f9f9f, 0xbcbcbc, 0xe2e2e2, 0xffffff,
];

/// How a run of text is to be drawn. The default is plain text in the default colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    pub strikethrough: bool,
    pub monospace: bool,
    pub reverse: bool,
    pub fg: Option<Colour>,
    pub bg: Option<Colour>,
}

/// Whether `c` is one of the formatting codes (the characters [`segments`] consumes).
pub fn is_formatting(c: char) -> bool {
    matches!(c, BOLD | COLOUR | HEX_COLOUR | RESET | MONOSPACE | REVERSE | ITALIC | STRIKETHROUGH | UNDERLINE)
}

/// `text` cut into runs of the same [`Format`], the codes (and their colour digits) gone.
/// Empty runs are left out; text without codes is one run, borrowed.
pub fn segments(text: &str) -> Vec<(Format, &str)> {
    let mut out = Vec::new();
    let mut format = Format::default();
    let mut start = 0;
    let mut rest = text;
    while let Some(at) = rest.find(is_formatting) {
        let absolute = text.len() - rest.len() + at;
        if absolute > start {
            out.push((format, &text[start..absolute]));
        }
        let code = rest[at..].chars().next().unwrap_or(RESET);
        let mut after = &rest[at + code.len_utf8()..];
        match code {
            BOLD => format.bold ^= true,
            ITALIC => format.italic ^= true,
            UNDERLINE => format.underline ^= true,
            STRIKETHROUGH => format.strikethrough ^= true,
            MONOSPACE => format.monospace ^= true,
            REVERSE => format.reverse ^= true,
            RESET => format = Format::default(),
            COLOUR => {
                let (fg, rest_after) = digits(after);
                after = rest_after;
                match fg {
                    None => (format.fg, format.bg) = (None, None),
                    Some(fg) => {
                        format.fg = irc_colour(fg);
                        if let Some((Some(bg), rest_after)) = after.strip_prefix(',').map(digits) {
                            format.bg = irc_colour(bg);
                            after = rest_after;
                        }
                    }
                }
            }
            _ => {
                let (fg, rest_after) = hex(after);
                after = rest_after;
                match fg {
                    None => (format.fg, format.bg) = (None, None),
                    Some(fg) => {
                        format.fg = Some(fg);
                        if let Some((Some(bg), rest_after)) = after.strip_prefix(',').map(hex) {
                            format.bg = Some(bg);
                            after = rest_after;
                        }
                    }
                }
            }
        }
        rest = after;
        start = text.len() - rest.len();
    }
    if start < text.len() {
        out.push((format, &text[start..]));
    }
    out
}

/// `text` without formatting codes (other controls stay, for [`crate::neutralise`]).
pub fn strip_formatting(text: &str) -> Cow<'_, str> {
    if !text.contains(is_formatting) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(segments(text).into_iter().map(|(_, run)| run).collect())
}

/// Every string value in `value` through [`strip_formatting`] (scriptable mode's JSON).
pub fn strip_formatting_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(plain) = strip_formatting(s) {
                *s = plain;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_formatting_json),
        Value::Object(map) => map.values_mut().for_each(strip_formatting_json),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Up to two ASCII digits at the start of `s`, as a number, and what follows them.
fn digits(s: &str) -> (Option<u8>, &str) {
    let n = s.bytes().take(2).take_while(u8::is_ascii_digit).count();
    (s[..n].parse().ok(), &s[n..])
}

/// Six hex digits at the start of `s`, as a colour, and what follows them.
fn hex(s: &str) -> (Option<Colour>, &str) {
    match s.get(..6).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())).and_then(|h| u32::from_str_radix(h, 16).ok())
    {
        Some(v) => (Some(Colour::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)), &s[6..]),
        None => (None, s),
    }
}

/// A numbered colour; 99 (and anything past the palette) is the default.
fn irc_colour(n: u8) -> Option<Colour> {
    (n < DEFAULT_COLOUR).then_some(Colour::Irc(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_formats_and_leave_the_text() {
        let runs = segments("a\u{2}b\u{2}c\u{3}4,12red\u{3}d\u{1d}\u{1f}e\u{f}f\u{3}3,x");
        let bold = Format { bold: true, ..Format::default() };
        let red = Format { fg: Some(Colour::Irc(4)), bg: Some(Colour::Irc(12)), ..Format::default() };
        let iu = Format { italic: true, underline: true, ..Format::default() };
        let green = Format { fg: Some(Colour::Irc(3)), ..Format::default() };
        let plain = Format::default();
        assert_eq!(
            runs,
            [
                (plain, "a"),
                (bold, "b"),
                (plain, "c"),
                (red, "red"),
                (plain, "d"),
                (iu, "e"),
                (plain, "f"),
                (green, ",x")
            ]
        );
        assert_eq!(segments("\u{3}099x"), [(Format { fg: Some(Colour::Irc(9)), ..plain }, "9x")]);
        assert_eq!(
            segments("\u{4}ff0000,00ff00x"),
            [(Format { fg: Some(Colour::Rgb(255, 0, 0)), bg: Some(Colour::Rgb(0, 255, 0)), ..plain }, "x")]
        );
        assert_eq!(
            segments("\u{16}r\u{1e}s"),
            [(Format { reverse: true, ..plain }, "r"), (Format { reverse: true, strikethrough: true, ..plain }, "s")]
        );
        assert_eq!(segments(""), []);
        assert_eq!(segments("\u{3}"), []);
    }

    #[test]
    fn stripping_keeps_other_controls_for_neutralising() {
        assert!(matches!(strip_formatting("plain"), Cow::Borrowed("plain")));
        assert_eq!(strip_formatting("\u{2}bold\u{2} \u{3}04,01red\u{f} \u{1b}[2J"), "bold red \u{1b}[2J");
        assert_eq!(crate::neutralise(&strip_formatting("\u{1d}x\u{7}")), "x\u{2407}");
    }
}
