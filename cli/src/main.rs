use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = cfinv::args::Cli::parse();
    match cfinv::run(&cli).await {
        Ok(out) => match std::io::stdout().lock().write_all(out.text.as_bytes()) {
            // `cfinv ... | head` closes the pipe early: not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("cfinv: {e}");
                ExitCode::FAILURE
            }
            _ if !out.success => ExitCode::FAILURE,
            _ => ExitCode::SUCCESS,
        },
        Err(e) => {
            eprintln!("cfinv: {e}");
            ExitCode::FAILURE
        }
    }
}
