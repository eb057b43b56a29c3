//! Decoding the object key carried by an event into the key(s) S3 actually stores.
//!
//! Classic notifications form-encode keys: "The s3 key provides information about the bucket
//! and object involved in the event. The object key name value is URL encoded. For example,
//! "red flower.jpg" becomes "red+flower.jpg"" (S3 user guide, "Event message structure").
//! For EventBridge events no AWS document says either way, and the moto emulator sends keys
//! raw. So a key holding `+` or `%` is ambiguous there, and [`KeyEncoding::Auto`] covers both
//! readings: one extra path for such keys only, instead of a stale cache for one of them.

use std::str::FromStr;

use crate::event::KeySource;
use crate::{Error, Result};

/// S3's limit on the length of an object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// How event keys are encoded (setting `KEY_ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyEncoding {
    /// Classic notifications: form-decoded. EventBridge: raw, plus the form-decoded reading when
    /// the key holds `+` or `%`.
    #[default]
    Auto,
    /// The key is taken as is, whatever the source.
    Raw,
    /// The key is form-decoded (`+` -> space, `%XX` -> byte), whatever the source.
    Form,
}

impl FromStr for KeyEncoding {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "raw" => Ok(Self::Raw),
            "form" => Ok(Self::Form),
            _ => Err(Error::InvalidConfig(format!(
                "KEY_ENCODING must be auto, raw or form, got {s:?}"
            ))),
        }
    }
}

/// The keys the event's `raw` key may stand for, most likely first, deduplicated.
///
/// A pinned reading (`Raw`, `Form`, or `Auto` for a classic notification) that is not a valid
/// key is an [`Error::InvalidKey`]. In `Auto` for EventBridge the raw reading comes first; the
/// form-decoded one is added when `raw` holds `+` or `%`, and is dropped silently when it does
/// not decode; either reading is dropped when invalid as long as the other one stands.
pub fn key_readings(raw: &str, source: KeySource, mode: KeyEncoding) -> Result<Vec<String>> {
    match (mode, source) {
        (KeyEncoding::Raw, _) => Ok(vec![validate(raw.to_owned())?]),
        (KeyEncoding::Form, _) | (KeyEncoding::Auto, KeySource::Notification) => {
            Ok(vec![validate(form_decode(raw)?)?])
        }
        (KeyEncoding::Auto, KeySource::EventBridge) => {
            let as_is = validate(raw.to_owned());
            if !raw.contains(['+', '%']) {
                return Ok(vec![as_is?]);
            }
            let decoded = form_decode(raw).and_then(validate);
            match (as_is, decoded) {
                (Ok(a), Ok(b)) if a != b => Ok(vec![a, b]),
                (Ok(a), _) => Ok(vec![a]),
                (Err(_), Ok(b)) => Ok(vec![b]),
                (Err(e), Err(_)) => Err(e),
            }
        }
    }
}

/// `application/x-www-form-urlencoded` decoding, strict: a `%` must start a `%XX` escape and the
/// bytes must be UTF-8 (lenient decoders pass such input through, which would hide a bad event).
fn form_decode(raw: &str) -> Result<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |j: usize| bytes.get(j).and_then(|b| char::from(*b).to_digit(16));
                let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
                    return Err(Error::InvalidKey(format!(
                        "invalid percent-encoding at byte {i} of key {raw:?}"
                    )));
                };
                // Two hex digits make at most 0xFF: the cast cannot truncate.
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Error::InvalidKey(format!("key {raw:?} does not decode to UTF-8")))
}

/// A key S3 can have stored: non-empty and at most [`MAX_KEY_BYTES`] bytes.
fn validate(key: String) -> Result<String> {
    if key.is_empty() {
        Err(Error::InvalidKey("the key is empty".to_owned()))
    } else if key.len() > MAX_KEY_BYTES {
        Err(Error::InvalidKey(format!(
            "the key is {} bytes long, S3 allows at most {MAX_KEY_BYTES}",
            key.len()
        )))
    } else {
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyEncoding::{Auto, Form, Raw};
    use KeySource::{EventBridge, Notification};

    fn readings(raw: &str, source: KeySource, mode: KeyEncoding) -> Vec<String> {
        key_readings(raw, source, mode).unwrap()
    }

    #[test]
    fn parses_the_setting() {
        assert_eq!("auto".parse::<KeyEncoding>().unwrap(), Auto);
        assert_eq!(" RAW ".parse::<KeyEncoding>().unwrap(), Raw);
        assert_eq!("form".parse::<KeyEncoding>().unwrap(), Form);
        let err = "url".parse::<KeyEncoding>().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(m) if m.contains("\"url\"")));
    }

    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(
            readings("images/red+flower.jpg", Notification, Auto),
            ["images/red flower.jpg"]
        );
        assert_eq!(readings("a%2Bb%25c", Notification, Auto), ["a+b%c"]);
        assert_eq!(
            readings("%ED%95%9C%EA%B8%80.txt", Notification, Auto),
            ["한글.txt"]
        );
    }

    #[test]
    fn ambiguous_eventbridge_keys_get_both_readings_raw_first() {
        assert_eq!(
            readings("a+b%20c.txt", EventBridge, Auto),
            ["a+b%20c.txt", "a b c.txt"]
        );
        assert_eq!(readings("a+b%20c.txt", EventBridge, Raw), ["a+b%20c.txt"]);
        assert_eq!(readings("a+b%20c.txt", EventBridge, Form), ["a b c.txt"]);
    }

    #[test]
    fn plain_eventbridge_keys_have_one_reading() {
        assert_eq!(readings("dir/a b.txt", EventBridge, Auto), ["dir/a b.txt"]);
        assert_eq!(readings("한글/😀.png", EventBridge, Auto), ["한글/😀.png"]);
    }

    #[test]
    fn an_undecodable_form_reading_is_dropped_in_auto_but_fatal_when_required() {
        assert_eq!(readings("100%.txt", EventBridge, Auto), ["100%.txt"]);
        assert_eq!(readings("%FF.txt", EventBridge, Auto), ["%FF.txt"]);
        for raw in ["100%.txt", "%zz", "%4", "%FF.txt", "%C3%28", "%+1"] {
            let err = key_readings(raw, Notification, Auto).unwrap_err();
            assert!(matches!(err, Error::InvalidKey(_)), "{raw}: {err}");
            let err = key_readings(raw, EventBridge, Form).unwrap_err();
            assert!(matches!(err, Error::InvalidKey(_)), "{raw}: {err}");
        }
    }

    #[test]
    fn keys_must_be_non_empty_and_at_most_1024_bytes() {
        let max = "k".repeat(1024);
        assert_eq!(readings(&max, EventBridge, Auto), [max.as_str()]);
        let multibyte = "한".repeat(341); // 1,023 bytes
        assert_eq!(readings(&multibyte, EventBridge, Raw), [multibyte.as_str()]);
        for (raw, source, mode) in [
            ("", EventBridge, Auto),
            ("", Notification, Auto),
            (&"k".repeat(1025), EventBridge, Auto),
            (&"한".repeat(342), Notification, Auto),
        ] {
            let err = key_readings(raw, source, mode).unwrap_err();
            assert!(matches!(err, Error::InvalidKey(_)), "{err}");
        }
        // "+" alone reads as " " too: the empty raw reading is not the issue, "+" is a valid key.
        assert_eq!(readings("+", EventBridge, Auto), ["+", " "]);
    }

    #[test]
    fn an_invalid_reading_is_dropped_when_the_other_stands() {
        // 1,030 bytes raw, 1,024 decoded: only the decoded reading is a possible S3 key.
        let raw = format!("{}{}", "k".repeat(1018), "%20".repeat(6));
        assert_eq!(raw.len(), 1036);
        let got = readings(&raw, EventBridge, Auto);
        assert_eq!(got, [format!("{}{}", "k".repeat(1018), " ".repeat(6))]);
        let err = key_readings(&raw, EventBridge, Raw).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)));
    }
}
