//! Object key -> CloudFront invalidation path.
//!
//! The CloudFront developer guide ("What you need to know when invalidating paths") says: "If
//! the path includes non-ASCII characters or unsafe characters as defined in RFC 1738,
//! URL-encode those characters. Do not URL-encode any other characters in the path, or
//! CloudFront will not invalidate the old version of the updated file." RFC 1738 (section 2.2)
//! calls unsafe: space, `<`, `>`, `"`, `#`, `%`, `{`, `}`, `|`, `\`, `^`, `~`, `[`, `]`, the
//! backtick, and the control characters 0x00-0x1F and 0x7F. Paths are case-sensitive, start
//! with `/` and are at most 4,000 characters. Two rules of the same page override the
//! encoding:
//!
//! - "Don't use the `~` character in your path. CloudFront doesn't support this character for
//!   invalidations, whether it's URL-encoded or not." A key holding `~` is covered by the
//!   narrowest wildcard that stops before its first `~` (`docs/~a.html` -> `/docs/*`; a key
//!   under `~alice/` at the root can only be covered by `/*`), which the planner counts as a
//!   wildcard like any other.
//! - "Asterisks (*) inserted anywhere else [than the end] are treated as a literal character
//!   match": an inner `*` stays literal. A key *ending* in `*` cannot be told from a wildcard
//!   and is invalidated as one: over-invalidating is the safe side.
//!
//! One addition to the documented set: `?` is reserved, not unsafe, but unencoded it starts a
//! query string, so it is encoded.

/// CloudFront's limit on the length of one invalidation path.
pub const MAX_PATH_LEN: usize = 4000;

/// The invalidation path of `key` (already stripped of the origin path): `/` + the key with
/// non-ASCII bytes (as UTF-8), RFC 1738-unsafe characters and `?` percent-encoded (uppercase
/// hex) and everything else, `*` `/` `+` `&` `=` `;` `$` `,` `'` `(` `)` `!` `@` `:` and dot
/// segments included, left literal. A key holding `~` becomes the wildcard of what precedes its
/// first `~` (see the module documentation).
pub fn encode_path(key: &str) -> String {
    let (body, wildcard) = match key.split_once('~') {
        Some((before, _)) => (before, true),
        None => (key, false),
    };
    let mut path = url_path(body);
    if wildcard && !path.ends_with('*') {
        path.push('*');
    }
    path
}

/// The URL path a viewer requests for `key` (origin path stripped): encoded as
/// [`encode_path`] encodes, but whole: `~` is unreserved in a URL (RFC 3986, section 2.3), so
/// it stays, where an invalidation path can only stop before it.
pub fn url_path(key: &str) -> String {
    let mut path = String::with_capacity(key.len() + 1);
    path.push('/');
    for &byte in key.as_bytes() {
        if byte != b'~' && must_encode(byte) {
            path.push('%');
            path.push(char::from(HEX[usize::from(byte >> 4)]));
            path.push(char::from(HEX[usize::from(byte & 0xF)]));
        } else {
            path.push(char::from(byte));
        }
    }
    path
}

/// Whether CloudFront accepts `p` as an invalidation path and it matches what it names: starts
/// with `/`, at most [`MAX_PATH_LEN`] characters, no `~` (literal or `%7E`), no other character
/// that must be encoded, and every `%` starting a `%XX` escape. `*` may stand anywhere: last it
/// is a wildcard, elsewhere a literal.
pub fn is_valid_path(p: &str) -> bool {
    if !p.starts_with('/') || p.len() > MAX_PATH_LEN {
        return false;
    }
    let body = p.as_bytes();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'%' => {
                let hex = |j: usize| body.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) || body[i + 1..i + 3].eq_ignore_ascii_case(b"7E") {
                    return false;
                }
                i += 3;
            }
            b if must_encode(b) => return false,
            _ => i += 1,
        }
    }
    true
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Non-ASCII bytes, RFC 1738's unsafe characters (controls included), and `?`.
fn must_encode(byte: u8) -> bool {
    !byte.is_ascii()
        || byte.is_ascii_control()
        || matches!(
            byte,
            b' ' | b'<'
                | b'>'
                | b'"'
                | b'#'
                | b'%'
                | b'{'
                | b'}'
                | b'|'
                | b'\\'
                | b'^'
                | b'~'
                | b'['
                | b']'
                | b'`'
                | b'?'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_either_literal_or_encoded_as_documented() {
        let literal: Vec<u8> = (0u8..=0x7F)
            .filter(|b| !encode_path(&format!("{}x", char::from(*b))).contains('%'))
            .collect();
        let expected =
            b"!$&'()*+,-./0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
        assert_eq!(
            String::from_utf8_lossy(&literal),
            String::from_utf8_lossy(expected)
        );
        // `*` alone is a trailing `*`: the one literal wildcard.
        assert_eq!(encode_path("*"), "/*");
        // `~` is not encoded but cut: the path is the wildcard of what precedes it.
        assert_eq!(encode_path("~x"), "/*");
        assert_eq!(encode_path("a/b~c~d"), "/a/b*");
        assert_eq!(encode_path("a*~"), "/a*", "already a wildcard");
        assert_eq!(encode_path("a*b"), "/a*b", "an inner '*' is literal");
    }

    #[test]
    fn a_url_path_is_the_invalidation_path_with_its_tilde_kept() {
        assert_eq!(url_path("docs/~a b.html"), "/docs/~a%20b.html");
        assert_eq!(url_path("서"), encode_path("서"));
        assert_eq!(url_path("a+b?c#d%e"), "/a+b%3Fc%23d%25e");
    }

    #[test]
    fn encoded_paths_are_valid_for_every_single_character_key() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            let p = encode_path(&format!("k{c}x"));
            assert!(is_valid_path(&p), "{c:?} -> {p}");
        }
    }

    #[test]
    fn validity() {
        for ok in [
            "/",
            "/*",
            "/a/*",
            "/a%20b",
            "/a%2A*",
            "/a*b",
            "/a**",
            "/A+B&c=d;e$,'()!@:",
        ] {
            assert!(is_valid_path(ok), "{ok}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(is_valid_path(&long));
        for bad in [
            "",
            "a",
            "*",
            "/a b",
            "/a?b",
            "/a#b",
            "/~",
            "/%7E",
            "/%7e",
            "/a%7E*",
            "/%",
            "/%2",
            "/%zz",
            "/é",
            "/\u{7f}",
            "/\n",
            &format!("{long}a"),
        ] {
            assert!(!is_valid_path(bad), "{bad:?}");
        }
    }
}
