//! The binary: parse flags, run the command, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use scopectl::cli::Cli;
use scopectl::error::{exit_code, render, EXIT_USAGE};

fn main() -> ExitCode {
    // First, before logging or the async runtime: `--version` and `--help`
    // end here (clap's DisplayVersion/DisplayHelp), in a few milliseconds.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "scopectl=info",
        (false, _) => "scopectl=debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SCOPECTL_LOG")
        .unwrap_or_else(|_| level.into());
    // The wire-level crates would log request and response bodies (a PKI
    // key, the join token) at debug and trace: never above warn, whatever
    // SCOPECTL_LOG asks.
    for quiet in [
        "aws_smithy_runtime=warn",
        "aws_smithy_runtime_api=warn",
        "aws_smithy_http=warn",
        "aws_smithy_http_client=warn",
        "aws_smithy_types=warn",
        "aws_sdk_ssm=warn",
        "aws_config=warn",
        "hyper=warn",
        "hyper_util=warn",
        "h2=warn",
        "rustls=warn",
        // kube logs every failed request at error level; scopectl reports
        // the failures that matter itself, with their cause.
        "kube_client=off",
    ] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(async {
        scopectl::cancel::install();
        scopectl::commands::run(cli).await
    }) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprint!("{}", render(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
