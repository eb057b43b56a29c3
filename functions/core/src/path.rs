//! Object key -> CloudFront invalidation path.
//!
//! The CloudFront developer guide ("Invalidating files", specifying the objects to invalidate)
//! says: "If the path includes non-ASCII characters or unsafe characters as defined in RFC 1738,
//! URL-encode those characters. Do not URL-encode any other characters in the path, or
//! CloudFront will not invalidate the old version of the updated file." RFC 1738 (section 2.2)
//! calls unsafe: space, `<`, `>`, `"`, `#`, `%`, `{`, `}`, `|`, `\`, `^`, `~`, `[`, `]`, the
//! backtick, and the control characters 0x00-0x1F and 0x7F. Paths are case-sensitive, start
//! with `/`, are at most 4,000 characters, and may hold `*` only as the last character (a
//! wildcard).
//!
//! Two additions to the documented set: `?` is reserved, not unsafe, but unencoded it starts a
//! query string, so it is encoded; and `*` inside a key is encoded because CloudFront rejects
//! it anywhere but at the end. A key *ending* in `*` keeps it literal and is therefore
//! invalidated as a wildcard: such a path cannot be told from one, and over-invalidating is the
//! safe side (a key `*` alone invalidates the whole distribution).

/// CloudFront's limit on the length of one invalidation path.
pub const MAX_PATH_LEN: usize = 4000;

/// The invalidation path of `key` (already stripped of the origin path): `/` + the key with
/// non-ASCII bytes (as UTF-8), RFC 1738-unsafe characters, `?` and non-final `*` percent-encoded
/// (uppercase hex) and everything else, `/` `+` `&` `=` `;` `$` `,` `'` `(` `)` `!` `@` `:` and
/// dot segments included, left literal.
pub fn encode_path(key: &str) -> String {
    let (body, wildcard) = match key.strip_suffix('*') {
        Some(body) => (body, true),
        None => (key, false),
    };
    let mut path = String::with_capacity(key.len() + 1);
    path.push('/');
    for &byte in body.as_bytes() {
        if must_encode(byte) || byte == b'*' {
            path.push('%');
            path.push(char::from(HEX[usize::from(byte >> 4)]));
            path.push(char::from(HEX[usize::from(byte & 0xF)]));
        } else {
            path.push(char::from(byte));
        }
    }
    if wildcard {
        path.push('*');
    }
    path
}

/// Whether CloudFront accepts `p` as an invalidation path and it matches what it names: starts
/// with `/`, at most [`MAX_PATH_LEN`] characters, `*` only last, no character that must be
/// encoded, and every `%` starting a `%XX` escape.
pub fn is_valid_path(p: &str) -> bool {
    if !p.starts_with('/') || p.len() > MAX_PATH_LEN {
        return false;
    }
    let body = p.strip_suffix('*').unwrap_or(p).as_bytes();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'%' => {
                let hex = |j: usize| body.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b if must_encode(b) || b == b'*' => return false,
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
            b"!$&'()+,-./0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
        assert_eq!(
            String::from_utf8_lossy(&literal),
            String::from_utf8_lossy(expected)
        );
        // `*` alone is a trailing `*`: the one literal wildcard.
        assert_eq!(encode_path("*"), "/*");
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
            "/A+B&c=d;e$,'()!@:",
            "/%7E",
        ] {
            assert!(is_valid_path(ok), "{ok}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(is_valid_path(&long));
        for bad in [
            "",
            "a",
            "*",
            "/a*b",
            "/a**",
            "/a b",
            "/a?b",
            "/a#b",
            "/~",
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
