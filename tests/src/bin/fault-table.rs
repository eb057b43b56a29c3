//! Prints the fault matrix's report table from the rows the tests wrote
//! (`target/fault-matrix/*.json`, or the folder given as the only argument).

use std::path::PathBuf;

use e2e::matrix::{Outcome, table};

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fault-matrix"),
        PathBuf::from,
    );
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            eprintln!("fault-table: no rows in {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    files.sort();
    let rows: Vec<Outcome> = files
        .iter()
        .map(|f| {
            let raw = std::fs::read_to_string(f).expect("read a row");
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect();
    print!("{}", table(&rows));
}
