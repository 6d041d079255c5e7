//! Making values from the network safe to show. Principals, paths and
//! routes in a trail come from requests an attacker may craft: a control
//! character can rewrite a terminal line, a bidirectional override can make
//! `spiffe://…/sa/admin` read as something else. Every command that prints
//! record values goes through here.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal or a page as itself: C0 and C1
/// controls, DEL, and the Unicode bidirectional formatting characters.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// For text output: each unsafe character becomes `\u{XXXX}` (and a
/// backslash `\\`, so the escape cannot be forged); anything else is kept.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// For HTML text and attribute values: [`text`], then the five markup
/// characters as entities. (An entity such as `&#x202E;` would still be
/// rendered as the override itself, hence the visible form.)
pub fn html(s: &str) -> String {
    let s = text(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_untouched_and_not_copied() {
        let s = "spiffe://cluster.local/ns/shop/sa/frontend GET /orders/{id} é";
        assert!(matches!(text(s), Cow::Borrowed(_)));
        assert_eq!(html(s), s);
    }

    #[test]
    fn controls_and_bidi_overrides_become_visible_escapes() {
        assert_eq!(
            text("a\nb\tc\u{1b}[2J"),
            "a\\u{000A}b\\u{0009}c\\u{001B}[2J"
        );
        assert_eq!(text("sa/\u{202E}nimda"), "sa/\\u{202E}nimda");
        assert_eq!(
            text("\u{2066}x\u{2069}\u{200F}\u{061C}\u{7f}\u{85}"),
            "\\u{2066}x\\u{2069}\\u{200F}\\u{061C}\\u{007F}\\u{0085}"
        );
        assert_eq!(
            text(r"a\u{000A}"),
            r"a\\u{000A}",
            "an escape cannot be forged"
        );
    }

    #[test]
    fn html_escapes_markup_after_the_text_escapes() {
        assert_eq!(
            html("<script>a&b\"'</script>\u{202E}"),
            "&lt;script&gt;a&amp;b&quot;&#39;&lt;/script&gt;\\u{202E}"
        );
    }
}
