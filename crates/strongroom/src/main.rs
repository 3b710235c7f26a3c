//! `strongroom`: the server (`serve`) and a CLI for every native API operation.

mod bench;
mod cli;
mod envelope_cmd;
mod newfile;
mod output;
mod serve;

use clap::Parser;

/// mimalloc rather than glibc's malloc: under load glibc's arena locks and consolidation took
/// about a fifth of the server's CPU (`docs/performance.md`). Secrets are zeroized before
/// they are freed either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error_line(&format!("cannot start the async runtime: {e}"));
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            output::error_line(&format!("{e:#}"));
            std::process::ExitCode::from(1)
        }
    }
}
