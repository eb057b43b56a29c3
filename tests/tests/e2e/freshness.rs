//! Freshness as a viewer sees it: every row of the key-to-path table, read through the lane's
//! edge (the local stack's CloudFront cache), is stale after an overwrite or delete until the
//! invalidation completes and fresh after. Lane 26 is this file's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cfinv_core::path::url_path;
use e2e::{Lane, Stack, is_hit, now_epoch, percentile};

/// (key under the lane's prefix, deleted instead of overwritten)
const ROWS: &[(&str, bool)] = &[
    ("k01/red flower.jpg", false),
    ("k02/a+b.txt", false),
    ("k03/100%.txt", false),
    ("k04/notes#1.md", false),
    ("k05/what?.html", false),
    ("k06/~user/page.html", false),
    ("k07/사진.png", false),
    ("k08/😀.gif", false),
    ("k09/a*b.txt", false),
    ("k11/folder/", false),
    ("k12/<x>{y}|z^[w]`v\\u\".txt", false),
    ("k13/&=;$,'()!@:.txt", false),
    ("k14/CamelCase.PNG", false),
    ("k15/index.html", false),
    ("k16/café crème.css", false),
    ("k19/trailing space ", false),
    ("k20/a%20b", false),
    ("k21/plus+and space", false),
    ("k22/cafe\u{301}.html", false),
    ("k23/a//b", false),
    ("k24/[1]`tick`\ttab.txt", false),
    ("k25/prefix*", false),
    ("k17/gone.html", true),
    ("k18/gone 😀 #2.html", true),
];

/// The URLs a viewer sends for `key`: the encoding the README documents (the edge compares a
/// URL with an invalidation path as sent, local/README.md "The edge cache"), bare and with a
/// query string the distribution does not cache on.
fn urls(key: &str) -> Vec<String> {
    let url = url_path(key);
    vec![url.clone(), format!("{url}?v=1")]
}

fn body(version: &str, key: &str) -> String {
    format!("{version} of {key}")
}

/// What the edge serves for `url`: (status, body).
fn read(stack: &Stack, lane: &Lane, url: &str) -> (u16, String) {
    let answer = stack.view(lane, url);
    (answer.status, answer.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_is_fresh_through_the_edge_once_its_invalidation_completes() {
    let stack = Stack::connect().await;
    let lane = stack.lane(26);
    let keys: Vec<String> = ROWS
        .iter()
        .map(|(name, _)| format!("{}{name}", lane.prefix))
        .collect();

    // v1 everywhere, and nothing of it left in flight: a batch completing later would empty
    // the cache the test primes next.
    let mut first = Vec::new();
    for key in &keys {
        stack.put(key, &body("v1", key)).await;
        first.push((cfinv_core::path::encode_path(key), now_epoch()));
    }
    stack.wait_covered(&lane, &first).await;
    assert!(
        stack.batches_completed(&lane).await,
        "v1's batches COMPLETED"
    );

    // Prime: a miss, then every variant of the URL is a hit on the same cached copy.
    for key in &keys {
        let canonical = url_path(key);
        let miss = stack.view(&lane, &canonical);
        assert_eq!(
            (miss.status, miss.text()),
            (200, body("v1", key)),
            "{canonical}"
        );
        assert!(!is_hit(&miss), "{canonical}: the first read is a miss");
        for url in urls(key) {
            let hit = stack.view(&lane, &url);
            assert_eq!(hit.text(), body("v1", key), "{url}");
            assert!(
                is_hit(&hit),
                "{url} is the cache key of {canonical}: {hit:?}"
            );
        }
    }

    // Overwrite or delete: until the invalidation completes the edge serves v1, as CloudFront
    // may (the test fails if the edge does not cache at all).
    let mut second = Vec::new();
    let mut expected: BTreeMap<&str, (u16, String)> = BTreeMap::new();
    for ((_, deleted), key) in ROWS.iter().zip(&keys) {
        if *deleted {
            stack.delete(key).await;
            expected.insert(key, (404, String::new()));
        } else {
            stack.put(key, &body("v2", key)).await;
            expected.insert(key, (200, body("v2", key)));
        }
        second.push((cfinv_core::path::encode_path(key), now_epoch()));
    }
    let written = Instant::now();
    for key in &keys {
        let url = url_path(key);
        assert_eq!(
            read(&stack, &lane, &url),
            (200, body("v1", key)),
            "{url} is stale until its invalidation completes"
        );
    }

    // A viewer polling each key from the write on: how long until its first fresh read.
    let fresh_after = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let deadline = written + stack.info.quiet_window() * 4;
            let mut fresh: BTreeMap<&str, Duration> = BTreeMap::new();
            while fresh.len() < keys.len() && Instant::now() < deadline {
                for key in &keys {
                    if !fresh.contains_key(key.as_str())
                        && fresh_read(
                            &read(&stack, &lane, &url_path(key)),
                            &expected[key.as_str()],
                        )
                    {
                        fresh.insert(key, written.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            fresh
        });
        let runtime = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| runtime.block_on(stack.wait_covered(&lane, &second)));
        watcher.join().expect("watcher")
    });

    // Every invalidation covering the change is Completed: every variant of every key is fresh.
    let mut stale = Vec::new();
    let mut reads = 0;
    for key in &keys {
        for url in urls(key) {
            reads += 1;
            let got = read(&stack, &lane, &url);
            if !fresh_read(&got, &expected[key.as_str()]) {
                stale.push(format!("{url}: {got:?}"));
            }
        }
    }
    let mut times: Vec<Duration> = fresh_after.values().copied().collect();
    times.sort();
    eprintln!(
        "freshness: {reads} reads after Completed, {} stale; write -> first fresh read: median {}, p95 {} ({} keys)",
        stale.len(),
        seconds(percentile(&times, 0.5)),
        seconds(percentile(&times, 0.95)),
        times.len()
    );
    assert!(stale.is_empty(), "stale reads after Completed: {stale:#?}");
    assert_eq!(
        fresh_after.len(),
        keys.len(),
        "every key read fresh while polling"
    );
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// A read is fresh when it has the status and (for a 200) the body of the latest change.
fn fresh_read(got: &(u16, String), want: &(u16, String)) -> bool {
    got.0 == want.0 && (want.0 != 200 || got.1 == want.1)
}
