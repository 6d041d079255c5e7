//! Terminal-safe text: anything read from a trail or a key file is shown
//! through [`text`], so a hostile emitter name or reason cannot move the
//! cursor, recolour the screen or reorder what the auditor reads.

/// `s` with control characters (C0, DEL, C1) and bidirectional formatting
/// characters written as `\u{…}`, and backslashes doubled so the escaping
/// is unambiguous.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || is_bidi(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode's bidirectional formatting characters (embeddings, overrides,
/// isolates, marks): invisible, yet they reorder the text around them.
fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(text("plain-emitter"), "plain-emitter");
        assert_eq!(text("a\nb\r\tc"), "a\\u{a}b\\u{d}\\u{9}c");
        assert_eq!(text("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(text("x\u{7f}\u{85}"), "x\\u{7f}\\u{85}");
        assert_eq!(text("ok\u{202e}kO"), "ok\\u{202e}kO");
        assert_eq!(
            text("\u{2066}\u{2069}\u{200f}"),
            "\\u{2066}\\u{2069}\\u{200f}"
        );
        // An escape written literally stays distinguishable from a real one.
        assert_eq!(text("\\u{1b}"), "\\\\u{1b}");
        assert_eq!(text("ünïcødé ✓"), "ünïcødé ✓");
    }
}
