//! Text from the network printed on a terminal or in a log: control and
//! bidirectional-formatting characters are shown as `\u{…}` escapes, so a
//! crafted name cannot move the cursor, recolour or reorder what follows
//! (e.g. draw a fake "OK" over a FAILED line).

use std::borrow::Cow;

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape("spiffe://a/b"), "spiffe://a/b");
        assert_eq!(escape("x\u{1b}[2K\rOK"), "x\\u{1b}[2K\\u{d}OK");
        assert_eq!(escape("a\u{202e}b\u{2066}"), "a\\u{202e}b\\u{2066}");
    }
}
