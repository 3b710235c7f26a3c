//! `strongroom`: the server (`serve`) and a CLI for every native API operation.

mod bench;
mod cli;
mod envelope_cmd;
mod newfile;
mod output;
mod serve;

use clap::Parser;

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
