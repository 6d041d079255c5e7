//! `mesh-audit report`: who accessed what. Aggregates request records per
//! source principal × destination workload × route (counts by decision,
//! violations, duration percentiles), source → destination edges for the
//! access graph, and loss records per emitter and reason. It does not
//! verify: run `verify` for that.

mod graph;
mod html;
mod names;
mod rows;
mod summary;
mod text;

use crate::args::ReportFormat;
use crate::lines;
use std::process::ExitCode;
use summary::Summary;

pub fn run(
    file: &std::path::Path,
    format: ReportFormat,
    output: Option<&std::path::Path>,
) -> ExitCode {
    let mut summary = Summary::default();
    if let Err(e) = lines::for_each_line(file, |_, bytes| summary.add_line(bytes)) {
        return crate::fail(2, &format!("mesh-audit report: {}: {e}", file.display()));
    }
    summary.finish();
    let name = file.display().to_string();
    let text = match format {
        ReportFormat::Text => text::render(&summary),
        ReportFormat::Html => html::render(&summary, &name),
    };
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => crate::fail(2, &format!("mesh-audit report: {}: {e}", path.display())),
        },
    }
}
