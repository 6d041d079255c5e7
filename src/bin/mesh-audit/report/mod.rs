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

use crate::args::{ReportArgs, ReportFormat};
use crate::lines::{for_each_line, TrailError};
use crate::status::{self, OutputError, Verdict};
use summary::Summary;

/// Why `report` could not report (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Trail(#[from] TrailError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

pub fn run(args: &ReportArgs) -> Result<Verdict, ReportError> {
    let mut summary = Summary::default();
    for_each_line(&args.file, |_, bytes| summary.add_line(bytes))?;
    summary.finish();
    let text = match args.format {
        ReportFormat::Text => text::render(&summary),
        ReportFormat::Html => html::render(&summary, &args.file.display().to_string()),
    };
    status::write(&text, args.output.as_deref())?;
    Ok(Verdict::Pass)
}
