//! The invalidation planner: a batch's paths -> the sorted chunks sent as CreateInvalidation
//! requests (docs/design.md §5).
//!
//! CloudFront allows at most 3,000 file paths and 15 wildcard paths *in progress* per
//! distribution and bills one path per entry (a wildcard counts as one). So the planner drops
//! what a wildcard in the set already covers, collapses busy directories into `<dir>*`, collapses
//! further up while the plan is over the limits, and splits what remains into chunks that each
//! fit one request and one DynamoDB item.
//!
//! Every step is a function of the *set* of paths, so the same batch always yields the same plan.
//! The cost is O(n log n) in the number of paths (plus their total length).

use std::collections::BTreeSet;
use std::collections::hash_map::{Entry, HashMap};

use serde::{Deserialize, Serialize};

use crate::tags::is_tag_item;

/// The planner's limits. Limits below 1 are taken as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// A directory holding at least this many changed paths is invalidated as `<dir>*`;
    /// 0 disables every collapse (paths are only chunked).
    pub collapse_threshold: usize,
    /// Paths per CreateInvalidation request (CloudFront: 3,000 in progress).
    pub max_paths_per_request: usize,
    /// Wildcard paths per request (CloudFront: 15 in progress).
    pub max_wildcards: usize,
    /// Path bytes per chunk: a chunk is stored as one DynamoDB item (400 KB limit).
    pub max_chunk_bytes: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            collapse_threshold: 10,
            max_paths_per_request: 3000,
            max_wildcards: 15,
            max_chunk_bytes: 300_000,
        }
    }
}

/// The planned requests: chunk `n` is sent with `CallerReference = <batchId>#<n>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub chunks: Vec<Vec<String>>,
}

impl Plan {
    /// Paths CloudFront bills for this plan (a wildcard counts as one).
    pub fn billed_paths(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Vec::is_empty)
    }
}

/// Plans the invalidation of `paths` (CloudFront paths, as made by [`crate::path::encode_path`]).
///
/// Steps: dedupe; drop every path covered by a wildcard of the set (`/a/*`, or any path ending
/// in `*`, covers what starts with the text before the `*`); if `collapse_threshold > 0`,
/// replace each directory (the prefix up to and including the last `/`, so `/dir/` belongs to
/// `/dir/`) holding at least that many paths by `<dir>*`, then, while the plan holds more than
/// `max_wildcards` wildcards or `max_paths_per_request` paths, collapse directories further up,
/// deepest level first and the busiest directory of a level first, at worst into `/*`; finally
/// split the sorted paths into chunks within every limit.
pub fn plan(paths: impl IntoIterator<Item = String>, opts: &PlanOptions) -> Plan {
    let limits = Limits {
        paths: opts.max_paths_per_request.max(1),
        wildcards: opts.max_wildcards.max(1),
        bytes: opts.max_chunk_bytes.max(1),
    };
    // Cache tags (`#tag`) are no paths: no wildcard covers them and they have no directory to
    // collapse into (`functions/core/src/tags.rs`). They are deduped and billed like paths, and
    // counted as file paths against the request's limit (no document says whether CloudFront
    // counts them in progress; counting them is the side that never sends too many).
    let (tags, paths): (BTreeSet<String>, BTreeSet<String>) =
        paths.into_iter().partition(|p| is_tag_item(p));
    let mut paths = drop_covered(paths);
    if opts.collapse_threshold > 0 {
        paths = Tree::new(&paths).collapse(opts.collapse_threshold, &limits);
    }
    let mut items: Vec<String> = tags.into_iter().collect();
    items.extend(paths);
    Plan {
        chunks: chunk(items, &limits),
    }
}

struct Limits {
    paths: usize,
    wildcards: usize,
    bytes: usize,
}

fn is_wildcard(path: &str) -> bool {
    path.ends_with('*')
}

/// The sorted paths that no *other* wildcard of the set covers.
fn drop_covered(paths: BTreeSet<String>) -> Vec<String> {
    let mut prefixes: Vec<&str> = paths.iter().filter_map(|p| p.strip_suffix('*')).collect();
    prefixes.sort_unstable();
    // Keep the prefixes no shorter one covers. The result is prefix-free, so the only candidate
    // to cover a path is the greatest prefix sorting before it (any prefix of the path sorts
    // before it, and so would everything between the two).
    let mut minimal = BTreeSet::new();
    let mut last: Option<&str> = None;
    for p in prefixes {
        if last.is_none_or(|l| !p.starts_with(l)) {
            minimal.insert(p);
            last = Some(p);
        }
    }
    let covered = |path: &str| {
        minimal
            .range(..=path)
            .next_back()
            .is_some_and(|m| path.starts_with(m) && path.strip_suffix('*') != Some(m))
    };
    let keep: Vec<bool> = paths.iter().map(|p| !covered(p)).collect();
    paths
        .into_iter()
        .zip(keep)
        .filter_map(|(p, keep)| keep.then_some(p))
        .collect()
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    paths: usize,
    wildcards: usize,
}

impl Count {
    const COLLAPSED: Count = Count {
        paths: 1,
        wildcards: 1,
    };

    fn add(&mut self, other: Count) {
        self.paths += other.paths;
        self.wildcards += other.wildcards;
    }
}

/// A directory: the prefix `path[..len]` of one of the paths under it, ending in `/`.
struct Dir {
    parent: usize,
    depth: usize,
    path: usize,
    len: usize,
    /// Paths whose directory is this one.
    direct: Count,
    collapsed: bool,
}

/// The directories of a coverage-free, sorted path set. Node 0 stands above `/` (it holds
/// paths without a `/`, which no valid path is) and is never collapsed.
struct Tree<'a> {
    paths: &'a [String],
    dirs: Vec<Dir>,
    /// The directory of each path.
    dir_of: Vec<usize>,
}

impl<'a> Tree<'a> {
    fn new(paths: &'a [String]) -> Self {
        let mut dirs = vec![Dir {
            parent: 0,
            depth: 0,
            path: 0,
            len: 0,
            direct: Count::default(),
            collapsed: false,
        }];
        let mut index: HashMap<(usize, &str), usize> = HashMap::new();
        let mut dir_of = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let (mut node, mut start) = (0, 0);
            for (slash, _) in p.match_indices('/') {
                node = match index.entry((node, &p[start..=slash])) {
                    Entry::Occupied(e) => *e.get(),
                    Entry::Vacant(e) => {
                        dirs.push(Dir {
                            parent: node,
                            depth: dirs[node].depth + 1,
                            path: i,
                            len: slash + 1,
                            direct: Count::default(),
                            collapsed: false,
                        });
                        *e.insert(dirs.len() - 1)
                    }
                };
                start = slash + 1;
            }
            dirs[node].direct.add(Count {
                paths: 1,
                wildcards: usize::from(is_wildcard(p)),
            });
            dir_of.push(node);
        }
        Self {
            paths,
            dirs,
            dir_of,
        }
    }

    fn prefix(&self, d: usize) -> &'a str {
        &self.paths[self.dirs[d].path][..self.dirs[d].len]
    }

    fn collapse(mut self, threshold: usize, limits: &Limits) -> Vec<String> {
        for dir in self.dirs.iter_mut().skip(1) {
            dir.collapsed = dir.direct.paths >= threshold;
        }
        self.fit(limits);
        self.paths_left()
    }

    /// Collapses directories until the plan is within `limits`, deepest level first (a deeper
    /// directory invalidates less that did not change). Within a level the directories are
    /// disjoint, so each one's count is final once the deeper levels are done: while wildcards
    /// are over the limit, the directories merging the most wildcards (at least 2) go first;
    /// while only paths are, those merging the most paths. Every collapse merges at least two
    /// paths, so this ends, at worst with `/*`. Ties go to the smaller prefix.
    fn fit(&mut self, limits: &Limits) {
        let over = |c: Count| c.paths > limits.paths || c.wildcards > limits.wildcards;
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for (d, dir) in self.dirs.iter().enumerate().skip(1) {
            if levels.len() <= dir.depth {
                levels.resize(dir.depth + 1, Vec::new());
            }
            levels[dir.depth].push(d);
        }
        let mut count: Vec<Count> = self.dirs.iter().map(|d| d.direct).collect();
        let mut total = self.settled_total();
        for level in levels.iter().rev() {
            if over(total) {
                let open: Vec<usize> = level
                    .iter()
                    .copied()
                    .filter(|&d| !self.dirs[d].collapsed && count[d].paths >= 2)
                    .collect();
                let by = |key: fn(Count) -> (usize, usize)| {
                    let mut v = open.clone();
                    v.sort_by(|&a, &b| {
                        key(count[b])
                            .cmp(&key(count[a]))
                            .then_with(|| self.prefix(a).cmp(self.prefix(b)))
                    });
                    v
                };
                let by_wildcards = by(|c| (c.wildcards, c.paths));
                let by_paths = by(|c| (c.paths, c.wildcards));
                let (mut wi, mut pi) = (0, 0);
                while over(total) {
                    let pick = if total.wildcards > limits.wildcards {
                        next_open(&by_wildcards, &mut wi, |d| {
                            !self.dirs[d].collapsed && count[d].wildcards >= 2
                        })
                    } else {
                        next_open(&by_paths, &mut pi, |d| !self.dirs[d].collapsed)
                    };
                    let Some(d) = pick else { break };
                    self.dirs[d].collapsed = true;
                    total.paths -= count[d].paths - 1;
                    total.wildcards = total.wildcards + 1 - count[d].wildcards;
                }
            }
            for &d in level {
                let settled = self.settled(d, count[d]);
                count[self.dirs[d].parent].add(settled);
            }
        }
    }

    fn settled(&self, d: usize, count: Count) -> Count {
        if self.dirs[d].collapsed {
            Count::COLLAPSED
        } else {
            count
        }
    }

    /// Paths and wildcards the plan holds with the current collapses.
    fn settled_total(&self) -> Count {
        let mut count: Vec<Count> = self.dirs.iter().map(|d| d.direct).collect();
        // Parents are created before their children: reverse id order is bottom-up.
        for d in (1..self.dirs.len()).rev() {
            let settled = self.settled(d, count[d]);
            count[self.dirs[d].parent].add(settled);
        }
        count[0]
    }

    /// The outermost collapsed directories as `<dir>*`, and the paths outside them, sorted.
    fn paths_left(&self) -> Vec<String> {
        let mut covered = vec![false; self.dirs.len()];
        let mut left = Vec::new();
        for d in 1..self.dirs.len() {
            let dir = &self.dirs[d];
            if dir.collapsed && !covered[dir.parent] {
                left.push(format!("{}*", self.prefix(d)));
            }
            covered[d] = dir.collapsed || covered[dir.parent];
        }
        left.extend(
            self.paths
                .iter()
                .zip(&self.dir_of)
                .filter(|&(_, &d)| !covered[d])
                .map(|(p, _)| p.clone()),
        );
        left.sort_unstable();
        left
    }
}

/// The next entry of `order` from `*cursor` on that is still `open`.
fn next_open(order: &[usize], cursor: &mut usize, open: impl Fn(usize) -> bool) -> Option<usize> {
    while let Some(&d) = order.get(*cursor) {
        *cursor += 1;
        if open(d) {
            return Some(d);
        }
    }
    None
}

/// Splits sorted paths into consecutive chunks within the limits (a single path longer than
/// the byte limit still gets a chunk of its own).
fn chunk(paths: Vec<String>, limits: &Limits) -> Vec<Vec<String>> {
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let (mut bytes, mut wildcards) = (0, 0);
    for p in paths {
        let wild = is_wildcard(&p);
        let full = current.len() >= limits.paths
            || (wild && wildcards >= limits.wildcards)
            || bytes + p.len() > limits.bytes;
        if full && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            (bytes, wildcards) = (0, 0);
        }
        bytes += p.len();
        wildcards += usize::from(wild);
        current.push(p);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn strings(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    fn exact(threshold: usize) -> PlanOptions {
        PlanOptions {
            collapse_threshold: threshold,
            ..PlanOptions::default()
        }
    }

    fn flat(plan: &Plan) -> Vec<&str> {
        plan.chunks.iter().flatten().map(String::as_str).collect()
    }

    #[test]
    fn cache_tags_are_deduped_billed_and_never_covered_or_collapsed() {
        let mut paths = strings(&["/*", "#sale", "#sale", "#a/b", "#a/c"]);
        paths.extend((0..20).map(|i| format!("#a/{i}")));
        let plan = plan(paths, &exact(10));
        let items = flat(&plan);
        assert_eq!(items.len(), 24, "{items:?}");
        assert!(items.contains(&"#sale") && items.contains(&"#a/b") && items.contains(&"/*"));
        assert!(!items.iter().any(|p| p.starts_with('#') && p.ends_with('*')));
        assert_eq!(plan.billed_paths(), 24);

        let tight = PlanOptions {
            max_paths_per_request: 2,
            ..exact(0)
        };
        let plan = super::plan(strings(&["#x", "#y", "/a"]), &tight);
        assert_eq!(plan.chunks, vec![strings(&["#x", "#y"]), strings(&["/a"])]);
    }

    /// Whether a planned path invalidates `path`: the same, or a wildcard over it.
    fn covers(planned: &HashSet<&str>, path: &str) -> bool {
        planned.contains(path)
            || (0..=path.len())
                .filter(|&i| path.is_char_boundary(i))
                .any(|i| planned.contains(format!("{}*", &path[..i]).as_str()))
    }

    /// The properties every plan must have; returns the planned paths.
    fn check(input: &[String], opts: &PlanOptions) -> Plan {
        let plan = plan(input.iter().cloned(), opts);
        let all = flat(&plan);
        let planned: HashSet<&str> = all.iter().copied().collect();
        assert_eq!(planned.len(), all.len(), "duplicates in {all:?}");
        assert!(all.is_sorted(), "not sorted: {all:?}");
        for p in input {
            assert!(covers(&planned, p), "{p} is not covered by {all:?}");
        }
        for chunk in &plan.chunks {
            assert!(!chunk.is_empty());
            assert!(chunk.len() <= opts.max_paths_per_request.max(1));
            assert!(chunk.iter().filter(|p| is_wildcard(p)).count() <= opts.max_wildcards.max(1));
            let bytes: usize = chunk.iter().map(String::len).sum();
            assert!(bytes <= opts.max_chunk_bytes || chunk.len() == 1);
        }
        let inputs: HashSet<&str> = input.iter().map(String::as_str).collect();
        let wildcards = all.iter().filter(|p| is_wildcard(p)).count();
        if opts.collapse_threshold == 0 {
            assert!(
                all.iter().all(|p| inputs.contains(p)),
                "new paths in {all:?}"
            );
        } else if input.iter().all(|p| p.starts_with('/')) {
            assert!(
                all.len() <= opts.max_paths_per_request.max(1),
                "{} paths",
                all.len()
            );
            assert!(
                wildcards <= opts.max_wildcards.max(1),
                "{wildcards} wildcards"
            );
        }
        // A new wildcard is always a whole directory.
        for p in all.iter().filter(|p| !inputs.contains(*p)) {
            assert!(p.ends_with("/*"), "{p}");
        }
        let mut reversed = input.to_vec();
        reversed.reverse();
        reversed.extend(input.iter().take(3).cloned());
        assert_eq!(super::plan(reversed, opts), plan, "order-dependent");
        plan
    }

    #[test]
    fn empty_input_makes_an_empty_plan() {
        let plan = plan(Vec::new(), &PlanOptions::default());
        assert_eq!(plan, Plan { chunks: vec![] });
        assert!(plan.is_empty());
        assert_eq!(plan.billed_paths(), 0);
    }

    #[test]
    fn dedupes_and_sorts() {
        let plan = check(&strings(&["/b", "/a", "/b", "/a%20b"]), &exact(10));
        assert_eq!(plan.chunks, [strings(&["/a", "/a%20b", "/b"])]);
        assert_eq!(plan.billed_paths(), 3);
    }

    #[test]
    fn drops_paths_a_wildcard_covers() {
        let input = strings(&[
            "/a/*",
            "/a/x",
            "/a/b/c",
            "/a/",
            "/ab",
            "/a",
            "/img*",
            "/img/x.png",
            "/imgz*",
            "/images/y",
        ]);
        for threshold in [0, 10] {
            let plan = check(&input, &exact(threshold));
            assert_eq!(flat(&plan), ["/a", "/a/*", "/ab", "/images/y", "/img*"]);
        }
        let plan = check(&strings(&["/*", "/", "/x/*", "/y"]), &exact(0));
        assert_eq!(flat(&plan), ["/*"]);
    }

    #[test]
    fn a_directory_at_the_threshold_becomes_a_wildcard() {
        let mut input: Vec<String> = (0..10).map(|i| format!("/img/{i}.png")).collect();
        input.extend((0..9).map(|i| format!("/css/{i}.css")));
        input.extend((0..9).map(|i| format!("/d/{i}")));
        input.push("/d/".to_owned()); // belongs to directory /d/: 10 paths
        input.push("/d".to_owned()); // belongs to /
        input.extend((0..10).map(|i| format!("/deep/er/{i}")));
        let plan = check(&input, &exact(10));
        let mut expected: Vec<String> = (0..9).map(|i| format!("/css/{i}.css")).collect();
        expected.extend(strings(&["/d", "/d/*", "/deep/er/*", "/img/*"]));
        assert_eq!(flat(&plan), expected);
        assert_eq!(plan.billed_paths(), 13);
    }

    #[test]
    fn threshold_zero_keeps_exact_paths_and_only_chunks() {
        let input: Vec<String> = (0..5000).map(|i| format!("/d{}/f{i}", i % 50)).collect();
        let plan = check(&input, &exact(0));
        assert_eq!(
            plan.chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [3000, 2000]
        );
        assert_eq!(plan.billed_paths(), 5000);

        let wildcards: Vec<String> = (0..40).map(|i| format!("/w{i:02}/*")).collect();
        let plan = check(&wildcards, &exact(0));
        assert_eq!(
            plan.chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [15, 15, 10]
        );
    }

    #[test]
    fn too_many_wildcards_collapse_one_level_up_largest_first() {
        // 5,000 paths over 50 directories: 50 wildcards, merged per section until <= 15.
        let input: Vec<String> = (0..5000)
            .map(|i| format!("/sec{}/d{}/f{i}.html", i % 5, (i / 5) % 10))
            .collect();
        let plan = check(&input, &PlanOptions::default());
        let mut expected = strings(&["/sec0/*", "/sec1/*", "/sec2/*", "/sec3/*"]);
        expected.extend((0..10).map(|d| format!("/sec4/d{d}/*")));
        assert_eq!(flat(&plan), expected);
        assert!(plan.billed_paths() <= 100);

        // Flat: nothing between the 50 directories and the root.
        let input: Vec<String> = (0..5000).map(|i| format!("/d{}/f{i}", i % 50)).collect();
        let plan = check(&input, &PlanOptions::default());
        assert_eq!(flat(&plan), ["/*"]);
    }

    #[test]
    fn too_many_paths_collapse_the_deepest_busiest_directory() {
        // 3,100 paths in 10 directories under the threshold: one collapse is enough.
        let input: Vec<String> = (0..3100).map(|i| format!("/x/d{}/f{i}", i % 10)).collect();
        let plan = check(&input, &exact(1000));
        let all = flat(&plan);
        assert_eq!(all.len(), 2791);
        assert_eq!(
            all.iter().filter(|p| is_wildcard(p)).collect::<Vec<_>>(),
            [&"/x/d0/*"]
        );
    }

    #[test]
    fn chunks_stay_within_the_byte_limit() {
        let input: Vec<String> = (0..1000)
            .map(|i| format!("/{i:04}/{}", "a".repeat(995)))
            .collect();
        let opts = PlanOptions {
            collapse_threshold: 0,
            max_chunk_bytes: 300_000,
            ..PlanOptions::default()
        };
        let plan = check(&input, &opts);
        assert_eq!(plan.chunks.len(), 4); // 299 paths of 1,001 bytes per chunk
        assert_eq!(plan.chunks[0].len(), 299);
    }

    #[test]
    fn limits_below_one_count_as_one() {
        let opts = PlanOptions {
            collapse_threshold: 1,
            max_paths_per_request: 0,
            max_wildcards: 0,
            max_chunk_bytes: 0,
        };
        let plan = check(&strings(&["/a", "/b/c"]), &opts);
        assert_eq!(plan.chunks, [strings(&["/*"])]);
    }

    #[test]
    fn random_path_sets_keep_every_property() {
        // A fixed xorshift sequence: reproducible without a random-number crate.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let names = ["a", "b", "c", "é", "a b", "x%2A"];
        for _ in 0..300 {
            let count = next(200) as usize;
            let input: Vec<String> = (0..count)
                .map(|_| {
                    let depth = next(4);
                    let mut p: String = (0..depth)
                        .map(|_| format!("/{}", names[next(names.len() as u64) as usize]))
                        .collect();
                    p.push_str(["/", "/f", "/g", "*", "/*", "/f1"][next(6) as usize]);
                    p
                })
                .collect();
            let opts = PlanOptions {
                collapse_threshold: next(6) as usize,
                max_paths_per_request: 1 + next(40) as usize,
                max_wildcards: 1 + next(5) as usize,
                max_chunk_bytes: 1 + next(200) as usize,
            };
            check(&input, &opts);
        }
    }

    #[test]
    fn plans_100k_paths() {
        let input: Vec<String> = (0..100_000)
            .map(|i| format!("/assets/v{}/d{}/file-{i}.js", i % 7, i % 1000))
            .collect();
        let plan = check(&input, &PlanOptions::default());
        assert!(plan.billed_paths() <= 15);
        let plan = check(&input, &exact(0));
        assert_eq!(plan.chunks.len(), 34);
    }
}
