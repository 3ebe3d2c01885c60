//! How each series looks, the same in every plot: a colour per stage, dashed for queue wait and
//! solid for service time; end to end in black; the log's other series in the colours after
//! the stages', dotted.

use super::chart::PALETTE;
use super::svg::Stroke;
use crate::metrics::STAGE_SERIES;
use crate::record::E2E_TAG;

/// What a log tag is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A stage's queue wait or service time: the stage's index in the summary, and the metric.
    Stage(usize, &'static str),
    EndToEnd,
    /// Another series (a load generator's, say): its index among those.
    Other(usize),
}

/// The kind of each of `tags`, given the summary's stages in order.
pub fn kinds(stages: &[&String], tags: &[String]) -> Vec<Kind> {
    let mut others = 0;
    tags.iter()
        .map(|tag| {
            if tag == E2E_TAG {
                return Kind::EndToEnd;
            }
            let stage = tag.rsplit_once('.').and_then(|(stage, metric)| {
                let metric = STAGE_SERIES.iter().find(|(m, _)| *m == metric)?.0;
                Some(Kind::Stage(stages.iter().position(|s| s.as_str() == stage)?, metric))
            });
            stage.unwrap_or_else(|| {
                others += 1;
                Kind::Other(others - 1)
            })
        })
        .collect()
}

/// The series' display name for a log tag: `s1 queue wait`, `s1 service`, `end to end`.
pub fn series_name(tag: &str) -> String {
    if tag == E2E_TAG {
        return "end to end".to_owned();
    }
    match tag.rsplit_once('.') {
        Some((stage, "queue_wait")) => format!("{stage} queue wait"),
        Some((stage, "service")) => format!("{stage} service"),
        Some((stage, "io_wait")) => format!("{stage} io wait"),
        _ => tag.to_owned(),
    }
}

/// The colour of a stage, or of another series after the stages.
fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// A series' line at full weight (a spectrum, a p99).
pub fn stroke(kind: Kind, stages: usize) -> Stroke {
    match kind {
        Kind::EndToEnd => Stroke::solid("#111", 3.0),
        Kind::Stage(i, "queue_wait") => Stroke { dash: Some("7 4"), ..Stroke::solid(colour(i), 2.0) },
        Kind::Stage(i, _) => Stroke::solid(colour(i), 2.0),
        Kind::Other(k) => Stroke { dash: Some("2 3"), ..Stroke::solid(colour(stages + k), 2.5) },
    }
}

/// A line under the main ones: a max over time (grey for end to end), or a stage's p99 under
/// the end-to-end p99.
pub fn thin_stroke(kind: Kind, stages: usize) -> Stroke {
    match kind {
        Kind::EndToEnd => Stroke::solid("#9a9a9a", 1.5),
        kind => Stroke { width: 1.5, ..stroke(kind, stages) },
    }
}
