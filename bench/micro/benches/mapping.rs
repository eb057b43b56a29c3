//! Throughput of the pure parts of the pipeline (`make bench` runs these with a short
//! measurement time): keys mapped per second by `collect` (what collect-keys does per S3 event)
//! and paths planned per second by `plan` on a 100,000-path batch (what create-invalidation does
//! once per batch), with collapsing on (the template's default threshold, 10) and off.

use std::hint::black_box;

use cfinv_bench::{batch_paths, events, mapping_config};
use cfinv_core::collect::collect;
use cfinv_core::plan::{PlanOptions, plan};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 1_000;
const PLAN_PATHS: usize = 100_000;

fn bench_collect(c: &mut Criterion) {
    let cfg = mapping_config();
    let events = events(EVENTS);
    let mut group = c.benchmark_group("collect");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(30);
    group.bench_function(BenchmarkId::new("keys", EVENTS), |b| {
        b.iter(|| {
            for event in &events {
                black_box(collect(black_box(event), &cfg).expect("collects"));
            }
        })
    });
    group.finish();
}

fn bench_plan(c: &mut Criterion) {
    let paths = batch_paths(PLAN_PATHS);
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(PLAN_PATHS as u64));
    group.sample_size(10);
    for (name, threshold) in [("collapse", 10), ("exact", 0)] {
        let opts = PlanOptions {
            collapse_threshold: threshold,
            ..PlanOptions::default()
        };
        // The clone is part of each iteration (plan takes ownership): a memcpy of 100k short
        // strings, small next to the planning itself.
        group.bench_function(BenchmarkId::new(name, PLAN_PATHS), |b| {
            b.iter(|| black_box(plan(black_box(paths.clone()), &opts)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_collect, bench_plan);
criterion_main!(benches);
