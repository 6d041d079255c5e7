//! The path that sampling and the access policy compare with prefixes: the
//! one the upstream will read, not the spelling the client sent.

/// `path` with percent-encoded unreserved characters decoded, repeated
/// slashes merged and `.` / `..` segments resolved (RFC 3986 §5.2.4); the
/// path itself when there is nothing to do, which is the common case.
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    let plain = !path.contains('%') && !path.contains("//") && !path.contains("/.");
    if plain {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes `%XX` where it stands for an unreserved character (letters,
/// digits, `-._~`); every other escape stays as written.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(h), hex(l)) {
                    (Some(h), Some(l)) => Some((h * 16 + l) as u8),
                    _ => None,
                }
            }
            _ => None,
        };
        match decoded {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                out.push(c);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_like_rfc_3986_dot_segment_removal() {
        for (raw, normal) in [
            ("/orders/42", "/orders/42"),
            ("/a//b", "/a/b"),
            ("/a/./b/", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../../etc", "/etc"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%zz", "/%zz"),
            ("/.", "/"),
        ] {
            assert_eq!(normalize_path(raw), normal, "{raw}");
        }
    }
}
