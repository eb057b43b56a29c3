//! `cfinv canary`: proves freshness on a real distribution. It writes tricky keys, primes
//! them through the distribution, overwrites them, waits for their batch to complete (in the
//! audit table), fetches them again and reports each key fresh or stale, and how the deployed
//! EventBridge events encoded the keys. The URL of a key is the invalidation path the
//! functions make of it (`cfinv_core::routes`), so the canary checks exactly that mapping.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::{Duration, Instant};

use cfinv_core::event::KeySource;
use cfinv_core::model::BatchStatus;
use cfinv_core::object_key::{KeyEncoding, key_readings};
use serde::Serialize;

use super::Deployment;
use super::http::Viewer;
use crate::report::Answer;
use crate::{Error, Result, error_chain};

/// The keys' names under the prefix: each holds a character the key-to-path mapping or the
/// event encoding treats specially (README "Paths").
pub const NAMES: &[&str] = &[
    "red flower.txt",
    "a+b.txt",
    "100%.txt",
    "서울.txt",
    "rocket-🚀.txt",
    "notes#1.txt",
    "what?.txt",
    "quote\"'.txt",
    "docs/index.html",
];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub key: String,
    pub url: String,
    pub fresh: bool,
    /// From the overwrite to the first fresh read (or to the last stale one).
    pub seconds: f64,
    /// The COMPLETED batch that invalidated the overwrite.
    pub batch_id: String,
    /// The keys collect-keys read in the overwrite's event (the audit's path items).
    pub readings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryReport {
    pub distribution_id: String,
    pub base_url: String,
    pub ok: bool,
    pub keys: Vec<KeyReport>,
    pub event_encoding: EventEncoding,
    pub key_encoding: String,
    pub advice: String,
}

impl Answer for CanaryReport {
    fn text(&self) -> String {
        let mut out = format!("canary on {} ({})\n", self.distribution_id, self.base_url);
        for k in &self.keys {
            let _ = writeln!(
                out,
                "{} {:>6.1}s  {}{}",
                if k.fresh { "fresh" } else { "STALE" },
                k.seconds,
                k.url,
                k.error
                    .as_ref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "events encode keys: {:?}; KeyEncoding is {}: {}",
            self.event_encoding, self.key_encoding, self.advice
        );
        let stale = self.keys.iter().filter(|k| !k.fresh).count();
        let _ = writeln!(out, "{} keys, {stale} stale", self.keys.len());
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventEncoding {
    /// Keys arrive as S3 stores them.
    Raw,
    /// Keys arrive form-encoded (space -> `+`), as in classic notifications.
    Form,
    /// The readings fit neither, or no key told them apart.
    Unknown,
}

/// How the events encoded `key`, from the readings collect-keys stored for it under
/// `setting`: raw events give exactly the readings of the key itself; a form-encoded event
/// leaves a reading that is not the key but form-decodes to it (under auto or raw), or, pinned
/// to form, decodes a key holding `+` or `%` back to itself.
pub fn event_encoding(
    key: &str,
    readings: &BTreeSet<String>,
    setting: KeyEncoding,
) -> EventEncoding {
    // Form encoding leaves these alone: such a key reads the same either way.
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-*/".contains(c))
    {
        return EventEncoding::Unknown;
    }
    let expected_raw: BTreeSet<String> = key_readings(key, KeySource::EventBridge, setting)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let form_decodes_to_key = |s: &String| {
        s != key
            && key_readings(s, KeySource::EventBridge, KeyEncoding::Form)
                .is_ok_and(|r| r.iter().any(|r| r == key))
    };
    let form = readings.iter().any(form_decodes_to_key)
        || (setting == KeyEncoding::Form
            && readings.len() == 1
            && readings.contains(key)
            && !expected_raw.contains(key));
    match (readings == &expected_raw, form) {
        (true, false) => EventEncoding::Raw,
        (false, true) => EventEncoding::Form,
        _ => EventEncoding::Unknown,
    }
}

/// One verdict for the stack: the keys that tell raw from form must agree.
pub fn overall(encodings: &[EventEncoding]) -> EventEncoding {
    let told: BTreeSet<_> = encodings
        .iter()
        .filter(|e| **e != EventEncoding::Unknown)
        .collect();
    match told.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => **one,
        _ => EventEncoding::Unknown,
    }
}

pub fn advice(encoding: EventEncoding) -> &'static str {
    match encoding {
        EventEncoding::Raw => {
            "pin KeyEncoding=raw: it saves the extra path auto adds for keys holding + or %"
        }
        EventEncoding::Form => "pin KeyEncoding=form",
        EventEncoding::Unknown => "keep KeyEncoding=auto (it covers both readings)",
    }
}

pub struct CanaryOptions<'a> {
    pub distribution_id: &'a str,
    pub domain: Option<&'a str>,
    pub prefix: &'a str,
    pub timeout: Duration,
    /// A local stack's viewer endpoint for the distribution (plain http).
    pub edge: Option<&'a str>,
}

/// A key the canary wrote: its key, its URL path and what it holds now.
struct Probe {
    key: String,
    path: String,
    body: String,
    etag: String,
}

pub async fn run(d: &Deployment, opts: &CanaryOptions<'_>) -> Result<CanaryReport> {
    let deadline = Instant::now() + opts.timeout;
    let bucket = d.stack.bucket()?.to_owned();
    let mapping = d.stack.mapping()?;
    let run_id = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut probes = Vec::new();
    // One directory per key: nine keys in one directory reach the planner's CollapseThreshold
    // (10 paths by default) and are invalidated as `dir/*`, which frees every key whatever its
    // encoding, and the canary would prove nothing.
    for (n, name) in NAMES.iter().enumerate() {
        let key = format!("{}{run_id}/{n}/{name}", opts.prefix);
        let relative = mapping
            .routes
            .iter()
            .filter(|r| r.distribution_id == opts.distribution_id)
            .find_map(|r| r.relative_key(&bucket, &key))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no route of the stack sends {key:?} to distribution {}: pass a --prefix \
                     the Routes parameter maps to it",
                    opts.distribution_id
                ))
            })?;
        probes.push(Probe {
            path: mapping.paths_for(relative).remove(0),
            key,
            body: String::new(),
            etag: String::new(),
        });
    }
    let base_url = match (opts.edge, opts.domain) {
        (Some(edge), _) => edge.trim_end_matches('/').to_owned(),
        (None, Some(domain)) => format!("https://{domain}"),
        (None, None) => format!("https://{}", domain_of(d, opts.distribution_id).await?),
    };
    let s3 = aws_sdk_s3::Client::new(d.conf());
    let viewer = Viewer::new()?;
    let outcome = probe(d, opts, &s3, &viewer, &base_url, &mut probes, deadline).await;
    // Deletes are changes too: the pipeline invalidates them like any other.
    for p in &probes {
        let _ = s3.delete_object().bucket(&bucket).key(&p.key).send().await;
    }
    let keys = outcome?;
    let setting = d
        .stack
        .parameter("KeyEncoding")
        .unwrap_or("auto")
        .parse()
        .unwrap_or_default();
    let encodings: Vec<_> = keys
        .iter()
        .filter(|k| !k.readings.is_empty())
        .map(|k| event_encoding(&k.key, &k.readings.iter().cloned().collect(), setting))
        .collect();
    let event_encoding = overall(&encodings);
    Ok(CanaryReport {
        distribution_id: opts.distribution_id.to_owned(),
        base_url,
        ok: keys.iter().all(|k| k.fresh),
        keys,
        event_encoding,
        key_encoding: d
            .stack
            .parameter("KeyEncoding")
            .unwrap_or("auto")
            .to_owned(),
        advice: advice(event_encoding).to_owned(),
    })
}

async fn domain_of(d: &Deployment, id: &str) -> Result<String> {
    let out = aws_sdk_cloudfront::Client::new(d.conf())
        .get_distribution()
        .id(id)
        .send()
        .await
        .map_err(|e| Error::Usage(format!("GetDistribution {id}: {}", error_chain(&e))))?;
    Ok(out
        .distribution()
        .map(|d| d.domain_name().to_owned())
        .unwrap_or_default())
}

async fn put_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    probes: &mut [Probe],
    version: &str,
) -> Result<()> {
    for p in probes {
        p.body = format!("cfinv canary {version} {}", p.key);
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(&p.key)
            .body(p.body.clone().into_bytes().into())
            .send()
            .await
            .map_err(|e| Error::Usage(format!("PutObject {}: {}", p.key, error_chain(&e))))?;
        p.etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    }
    Ok(())
}

async fn probe(
    d: &Deployment,
    opts: &CanaryOptions<'_>,
    s3: &aws_sdk_s3::Client,
    viewer: &Viewer,
    base_url: &str,
    probes: &mut [Probe],
    deadline: Instant,
) -> Result<Vec<KeyReport>> {
    let bucket = d.stack.bucket()?;
    put_all(s3, bucket, probes, "v1").await?;
    // The first version's own invalidation must be done before priming, or it would clear
    // the primed copies and make any mapping look fresh.
    wait_completed(d, opts, probes, "first", deadline).await?;
    for p in probes.iter() {
        let url = format!("{base_url}{}", p.path);
        for _ in 0..2 {
            viewer.get(&url).await?;
        }
    }
    put_all(s3, bucket, probes, "v2").await?;
    let overwritten = Instant::now();
    let batches = wait_completed(d, opts, probes, "second", deadline).await?;
    let mut reports = Vec::new();
    for (p, batch) in probes.iter().zip(batches) {
        let url = format!("{base_url}{}", p.path);
        let got = viewer.get(&url).await;
        let (fresh, error) = match &got {
            Ok(r) => (r.status == 200 && r.body == p.body.as_bytes(), None),
            Err(e) => (false, Some(e.to_string())),
        };
        let readings = readings(d, &batch, &p.etag).await?;
        reports.push(KeyReport {
            key: p.key.clone(),
            url,
            fresh,
            seconds: overwritten.elapsed().as_secs_f64(),
            batch_id: batch,
            readings,
            error: error.or_else(|| (!fresh).then(|| "served the old content".to_owned())),
        });
    }
    Ok(reports)
}

/// The keys collect-keys read from the event of the write with `etag`, in `batch_id`.
async fn readings(d: &Deployment, batch_id: &str, etag: &str) -> Result<Vec<String>> {
    let items = d.table.batch_items(batch_id).await?;
    let mut keys: Vec<String> = items
        .map(|i| i.paths)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.etag.as_deref().map(|e| e.trim_matches('"')) == Some(etag))
        .filter_map(|p| p.key)
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Waits until each probe's current write is in a COMPLETED batch; returns the batch ids. A
/// write still waiting at the deadline is a timeout, not a stale key: nothing was invalidated
/// that a fetch could judge.
async fn wait_completed(
    d: &Deployment,
    opts: &CanaryOptions<'_>,
    probes: &[Probe],
    version: &'static str,
    deadline: Instant,
) -> Result<Vec<String>> {
    let mut done: Vec<Option<String>> = vec![None; probes.len()];
    while Instant::now() < deadline {
        for (p, slot) in probes.iter().zip(done.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            for visit in d.table.path_history(opts.distribution_id, &p.path).await? {
                if visit.etag.as_deref().map(|e| e.trim_matches('"')) != Some(p.etag.as_str()) {
                    continue;
                }
                let planned = d.table.planned(&visit.batch_id).await?;
                if planned.is_some_and(|p| p.batch.status == BatchStatus::Completed) {
                    *slot = Some(visit.batch_id.clone());
                    break;
                }
            }
        }
        if done.iter().all(Option::is_some) {
            return Ok(done.into_iter().flatten().collect());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let waiting: Vec<&str> = probes
        .iter()
        .zip(&done)
        .filter(|(_, batch)| batch.is_none())
        .map(|(p, _)| p.key.as_str())
        .collect();
    Err(Error::CanaryTimeout {
        seconds: opts.timeout.as_secs(),
        version,
        waiting: waiting.len(),
        example: waiting.first().copied().unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn raw_events_give_the_keys_own_readings() {
        let auto = KeyEncoding::Auto;
        assert_eq!(
            event_encoding("red flower.txt", &set(&["red flower.txt"]), auto),
            EventEncoding::Raw
        );
        assert_eq!(
            event_encoding("a+b.txt", &set(&["a+b.txt", "a b.txt"]), auto),
            EventEncoding::Raw
        );
        assert_eq!(
            event_encoding("a+b.txt", &set(&["a+b.txt"]), KeyEncoding::Raw),
            EventEncoding::Raw
        );
    }

    #[test]
    fn form_events_leave_a_reading_that_decodes_to_the_key() {
        let auto = KeyEncoding::Auto;
        assert_eq!(
            event_encoding(
                "red flower.txt",
                &set(&["red+flower.txt", "red flower.txt"]),
                auto
            ),
            EventEncoding::Form
        );
        assert_eq!(
            event_encoding("a+b.txt", &set(&["a%2Bb.txt", "a+b.txt"]), auto),
            EventEncoding::Form
        );
        // Pinned to form: a form-encoded `+` decodes back to the key, a raw one would not.
        assert_eq!(
            event_encoding("a+b.txt", &set(&["a+b.txt"]), KeyEncoding::Form),
            EventEncoding::Form
        );
        assert_eq!(
            event_encoding("a+b.txt", &set(&["a b.txt"]), KeyEncoding::Form),
            EventEncoding::Raw
        );
    }

    #[test]
    fn a_key_that_cannot_tell_is_unknown_and_disagreeing_keys_are_unknown() {
        assert_eq!(
            event_encoding("plain.txt", &set(&["plain.txt"]), KeyEncoding::Form),
            EventEncoding::Unknown
        );
        assert_eq!(
            overall(&[EventEncoding::Raw, EventEncoding::Unknown]),
            EventEncoding::Raw
        );
        assert_eq!(
            overall(&[EventEncoding::Raw, EventEncoding::Form]),
            EventEncoding::Unknown
        );
        assert_eq!(overall(&[]), EventEncoding::Unknown);
        assert!(advice(EventEncoding::Raw).contains("KeyEncoding=raw"));
    }
}
