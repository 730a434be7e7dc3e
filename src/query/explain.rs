//! `EXPLAIN`: what the planner decided for each segment of one query, and what it cost.

use std::fmt;
use std::time::Duration;

use super::plan::{Plan, Strategy};

/// One segment (or the in-memory rows) of an explained query.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentExplain {
    /// Segment id; `None` for the in-memory rows.
    pub segment: Option<u64>,
    /// Rows (live and deleted).
    pub rows: u64,
    /// Live rows.
    pub live: u64,
    /// Passing rows estimated from index statistics before evaluation (segments only).
    pub estimated: Option<f64>,
    /// Live rows that pass the filter.
    pub passing: u64,
    /// The planner's decision.
    pub plan: Plan,
    /// The strategy that produced the results (the exact scan when a graph strategy fell short).
    pub ran: Strategy,
    /// Whether a graph strategy found fewer than `k` rows and the exact scan replaced it.
    pub fallback: bool,
    /// Time to evaluate the filter on this segment (once per prepared filter).
    pub filter_time: Duration,
    /// Time to search this segment for this query.
    pub search_time: Duration,
    /// Vectors scored (traversal plus rescoring, or scan).
    pub evaluations: usize,
    /// Queries the time and the vectors scored are for (a block searched together; 1 for one
    /// query). The estimated costs are per query.
    pub queries: usize,
}

/// What one filtered query did, segment by segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Explain {
    /// The filter as text.
    pub filter: String,
    /// Results asked for.
    pub k: usize,
    /// Results returned.
    pub hits: usize,
    /// Per segment, then the in-memory rows.
    pub segments: Vec<SegmentExplain>,
}

impl Explain {
    /// Filter evaluation plus search time, all segments.
    #[must_use]
    pub fn total_time(&self) -> Duration {
        self.segments.iter().map(|s| s.filter_time + s.search_time).sum()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "filter: {}", self.filter)?;
        for s in &self.segments {
            let pct = if s.live > 0 { 100.0 * s.passing as f64 / s.live as f64 } else { 0.0 };
            match s.segment {
                Some(id) => write!(f, "segment {id}: {} rows, {} live", s.rows, s.live)?,
                None => write!(f, "in memory: {} rows, {} live", s.rows, s.live)?,
            }
            match s.estimated {
                Some(e) => writeln!(f, "; passing: estimated {e:.0}, actual {} ({pct:.3}%)", s.passing)?,
                None => writeln!(f, "; passing: {} ({pct:.3}%)", s.passing)?,
            }
            let ef = match s.plan.strategy {
                Strategy::Exact => String::new(),
                Strategy::Int8Scan => format!(" rescoring {}", s.plan.rescore),
                Strategy::Graph | Strategy::TwoHop => format!(" ef={}", s.plan.ef),
            };
            write!(f, "  strategy: {}{ef} ({})", s.plan.strategy, s.plan.reason)?;
            if s.fallback {
                write!(f, "; found fewer than k, fell back to {}", s.ran)?;
            }
            writeln!(f)?;
            let costs: Vec<String> =
                s.plan.costs.iter().filter_map(|(st, c)| c.map(|c| format!("{st} {c:.0}"))).collect();
            writeln!(f, "  estimated cost per query (row reads): {}", costs.join(", "))?;
            let times: Vec<String> = s
                .plan
                .costs
                .iter()
                .filter_map(|(st, c)| c.map(|c| format!("{st} {:.3}", c * s.plan.row_read_ns / 1e6)))
                .collect();
            writeln!(
                f,
                "  estimated time per query (ms, {:.0} ns a row read): {}",
                s.plan.row_read_ns,
                times.join(", ")
            )?;
            let queries = s.queries.max(1);
            write!(f, "  time: filter {:.3} ms, search {:.3} ms", ms(s.filter_time), ms(s.search_time))?;
            if queries > 1 {
                write!(
                    f,
                    " for {queries} queries searched together ({:.3} ms each)",
                    ms(s.search_time) / queries as f64
                )?;
            }
            writeln!(f, "; {} vectors scored", s.evaluations)?;
        }
        write!(f, "total: {:.3} ms, {} of k={} results", ms(self.total_time()), self.hits, self.k)
    }
}
