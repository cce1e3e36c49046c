//! `nabla`: train networks, check gradients, list backends.
//!
//! Exit codes: 0 success, 1 a failure while running (a non-finite loss, a backend error, a
//! gradient check above its tolerance), 2 a bad flag or value.

mod args;
mod backends;
mod bench;
mod check_backend;
mod compare;
mod config;
mod cpu;
mod evaluate;
mod gradcheck;
mod job;
mod model;
mod plot;
mod plugin_header;
mod train;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Some(c) => c,
        None => match Cli::parse_from(["nabla", "train"]).command {
            Some(c) => c,
            None => return ExitCode::from(2),
        },
    };
    // Under an MPI launcher every rank runs this same command; `job` says which rank this is.
    let job = match job::Job::start() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Train(a) => train::run(&a, &job),
        Command::Gradcheck(a) => gradcheck::run(&a),
        Command::Backends(a) => backends::run(&a),
        Command::Bench(a) => bench::run(&a, &job),
        Command::Eval(a) => evaluate::eval(&a),
        Command::Predict(a) => evaluate::predict(&a),
        Command::Inspect(a) => evaluate::inspect(&a),
        Command::CheckBackend(a) => check_backend::run(&a),
        Command::PluginHeader(a) => plugin_header::run(&a),
        Command::Compare(a) => compare::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = match e {
                nabla::Error::Invalid { .. } | nabla::Error::Unavailable { .. } => 2,
                _ => 1,
            };
            job.fail(&e, code)
        }
    }
}
