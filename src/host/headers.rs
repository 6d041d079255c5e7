//! A header map as the proxy gave it, in arrival order: every name in one
//! string and every value in one buffer, so reading a map of n headers
//! allocates four times, not 2n + 1.

/// Headers in arrival order; a name may repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    names: String,
    values: Vec<u8>,
    /// Per header: where its name ends in `names`, its value in `values`
    /// (each starts where the previous one ended).
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Room for `count` headers of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Headers {
        Headers {
            names: String::with_capacity(bytes / 2),
            values: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    pub fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.ends.push((self.names.len(), self.values.len()));
    }

    /// Empty, its allocations kept for the next map.
    pub fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
        self.ends.clear();
    }

    /// Keeps at most `bytes` of allocation: a map far larger than usual
    /// is not held on to for the next request.
    pub fn shrink_past(&mut self, bytes: usize) {
        if self.names.capacity() + self.values.capacity() > bytes {
            *self = Headers::default();
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every header in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|((n0, v0), &(n1, v1))| {
            (
                self.names.get(n0..n1).unwrap_or(""),
                self.values.get(v0..v1).unwrap_or(&[]),
            )
        })
    }

    /// Every value of `name`, matched ignoring ASCII case, in arrival order.
    pub fn values_of<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
        let (names, name) = (self.names.as_bytes(), name.as_bytes());
        let (mut n0, mut v0, mut at) = (0, 0, 0);
        // A plain walk: the header maps are short, and the iterator
        // adaptors it replaces cost more than the comparisons. Names
        // nearly always match exactly (proxies give them in lower case):
        // that is tried first, a byte-wise comparison ignoring case after.
        std::iter::from_fn(move || {
            while let Some(&(n1, v1)) = self.ends.get(at) {
                let (this_name, this_value) = (n0..n1, v0..v1);
                (n0, v0, at) = (n1, v1, at + 1);
                if names
                    .get(this_name)
                    .is_some_and(|n| n == name || n.eq_ignore_ascii_case(name))
                {
                    return Some(self.values.get(this_value).unwrap_or(&[]));
                }
            }
            None
        })
    }

    /// The first value of `name` (exactly as given; proxies give header
    /// names in lower case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let names = self.names.as_bytes();
        let (mut n0, mut v0) = (0, 0);
        for &(n1, v1) in &self.ends {
            if n1 - n0 == name.len() && names.get(n0..n1) == Some(name.as_bytes()) {
                return self.values.get(v0..v1);
            }
            (n0, v0) = (n1, v1);
        }
        None
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Headers {
        let mut h = Headers::default();
        for (k, v) in pairs {
            h.push(k.as_ref(), v.as_ref());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_header_in_order_and_finds_the_first_of_a_name() {
        let h: Headers = [("a", "1"), ("", ""), ("é", "x\0y"), ("a", "2"), ("b", "")]
            .into_iter()
            .collect();
        assert_eq!(h.len(), 5);
        let all: Vec<(&str, &[u8])> = h.iter().collect();
        assert_eq!(
            all,
            vec![
                ("a", &b"1"[..]),
                ("", &b""[..]),
                ("é", &b"x\0y"[..]),
                ("a", &b"2"[..]),
                ("b", &b""[..]),
            ]
        );
        assert_eq!(h.get("a"), Some(&b"1"[..]));
        assert_eq!(h.get("b"), Some(&b""[..]));
        assert_eq!(h.get("c"), None);
        let a: Vec<&[u8]> = h.values_of("A").collect();
        assert_eq!(a, vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(h.values_of("É").count(), 0, "ASCII case only");
        assert_eq!(h.values_of("é").count(), 1);
        assert!(Headers::default().is_empty());
        // Emptied for the next map, its room kept unless it is too large.
        let mut kept = h.clone();
        kept.clear();
        assert!(kept.is_empty() && kept.get("a").is_none());
        kept.shrink_past(1024);
        assert!(kept.values.capacity() > 0, "kept");
        let mut big = Headers::with_capacity(1, 4096);
        big.shrink_past(1024);
        assert_eq!(big.values.capacity() + big.names.capacity(), 0, "let go");
        assert_eq!(Headers::default().iter().count(), 0);
    }
}
