//! What every function does at start-up: structured JSON logs (one line per decision; `RUST_LOG`
//! or the template's `LogLevel` sets the filter) and reading settings from the environment.

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// A numeric setting from the environment, with a default when unset.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> crate::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            crate::Error::InvalidConfig(format!("{name} is not a valid number: {v:?}"))
        }),
        _ => Ok(default),
    }
}

/// A required setting from the environment.
pub fn env_required(name: &str) -> crate::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| crate::Error::InvalidConfig(format!("{name} is not set")))
}
