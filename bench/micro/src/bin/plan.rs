//! `plan`: runs the real planner on a JSON batch read from stdin, for `make bench`.
//!
//! Input: `{"paths": ["/a", ...], "collapseThreshold": 0}` (the other limits are the template's
//! defaults). Output: `{"requests", "billedPaths", "wildcards", "chunkSizes", "sample"}`.
//! The benchmark uses it to plan the burst's own paths with collapsing off, without a second
//! run of the whole pipeline.

use std::io::Read;

use cfinv_core::plan::{PlanOptions, plan};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let input: Value = serde_json::from_str(&input)?;
    let paths: Vec<String> = serde_json::from_value(input["paths"].clone())?;
    let opts = PlanOptions {
        collapse_threshold: usize::try_from(input["collapseThreshold"].as_u64().unwrap_or(10))?,
        ..PlanOptions::default()
    };
    let planned = plan(paths, &opts);
    let all: Vec<&String> = planned.chunks.iter().flatten().collect();
    let out = json!({
        "requests": planned.chunks.len(),
        "billedPaths": planned.billed_paths(),
        "wildcards": all.iter().filter(|p| p.ends_with('*')).count(),
        "chunkSizes": planned.chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        "sample": all.iter().take(5).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
