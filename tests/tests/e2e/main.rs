//! One test binary for every end-to-end test, so cargo runs them all in parallel against the
//! one stack `make e2e` starts (each test owns its own distribution, or "lane").

mod audit;
mod cli;
mod discovery;
mod faults;
mod freshness;
mod manual;
mod ops;
mod pipeline;
