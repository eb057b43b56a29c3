//! What every function does at start-up: structured JSON logs (one line per decision; `RUST_LOG`
//! or the template's `LogLevel` sets the filter), its settings read from the environment once,
//! then one handler per event.

#[cfg(feature = "lambda")]
pub use serve::{init_tracing, serve};

/// A numeric setting from the environment, with a default when unset.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> crate::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            crate::Error::InvalidConfig(format!("{name} is not a valid number: {v:?}"))
        }),
        _ => Ok(default),
    }
}

/// An optional setting from the environment, trimmed; unset or blank is `None` (the template
/// passes an empty string for an option left off).
pub fn env_optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A required setting from the environment.
pub fn env_required(name: &str) -> crate::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| crate::Error::InvalidConfig(format!("{name} is not set")))
}

#[cfg(feature = "lambda")]
mod serve {
    use std::future::Future;

    use lambda_runtime::{LambdaEvent, service_fn};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use crate::{Error, Result};

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

    /// Serves one function: JSON logs, `setup` once per execution environment (SDK clients and
    /// settings), then `handler` for every event, its input parsed as `I` (`InvalidInput` if it
    /// does not parse).
    ///
    /// A `setup` error (a misconfigured stack) is logged at start and answers every invocation,
    /// with its own name (`InvalidConfig`), rather than failing the init: a failed init reaches
    /// Step Functions as `Runtime.ExitError`, which says nothing and which the state machines
    /// retry as a crash, while `InvalidConfig` is not retried and names the setting on the
    /// failed state in the console.
    pub async fn serve<S, I, O, Setup, SetupFut, Handler, HandlerFut>(
        setup: Setup,
        handler: Handler,
    ) -> Result<(), lambda_runtime::Error>
    where
        S: Send + Sync + 'static,
        I: DeserializeOwned,
        O: Serialize,
        Setup: FnOnce() -> SetupFut,
        SetupFut: Future<Output = Result<S>>,
        Handler: Fn(&'static S, I) -> HandlerFut + Send + Sync + 'static,
        HandlerFut: Future<Output = Result<O>> + Send,
    {
        init_tracing();
        // Both live as long as the process, as Lambda keeps an execution environment.
        let state: &'static Result<S> = Box::leak(Box::new(setup().await));
        if let Err(e) = state {
            tracing::error!(error = %e, "configuration is invalid; every invocation fails with it until the stack is fixed");
        }
        let handler: &'static Handler = Box::leak(Box::new(handler));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let state = state.as_ref().map_err(Error::clone)?;
            let input: I = serde_json::from_value(event.payload)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            handler(state, input).await
        }))
        .await
    }
}
