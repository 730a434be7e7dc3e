//! The REPL's line handling, independent of any terminal so that it can be tested and fuzzed:
//! [`Repl::handle_line`] takes one line and returns what to print.
//!
//! Grammar: a plain line is a text query; `WHERE expr` sets the filter for the next queries
//! (`WHERE` alone clears it); `text WHERE expr` filters one query; backslash commands:
//! `\like ID`, `\not TEXT` (`\not` clears), `\k N`, `\lang xx|auto`, `\templates
//! ensemble|single|off`, `\explain`, `\schema`, `\stats`, `\label L1, L2, ...`, `\use NAME`,
//! `\show`, `\help`, `\q`.
//!
//! Invariants: no input makes it panic; it never runs a shell; everything it prints that came
//! from the database or the user is stripped of control characters.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::encode::Prompting;
use crate::ingest::Status;
use crate::present::{Answer, clean, clean_lines, render_table as render};
use crate::session::{QueryInput, Session};

/// Commands offered for completion.
pub const COMMANDS: [&str; 28] = [
    "\\like",
    "\\not",
    "\\k",
    "\\lang",
    "\\templates",
    "\\explain",
    "\\schema",
    "\\stats",
    "\\label",
    "\\use",
    "\\show",
    "\\import",
    "\\help",
    "\\q",
    "WHERE",
    "\\good",
    "\\bad",
    "\\feedback",
    "\\rocchio",
    "\\classify",
    "\\classifier",
    "\\min",
    "\\offset",
    "\\more",
    "\\group",
    "\\diverse",
    "\\merge",
    "\\change",
];

/// Longest line handled.
pub const MAX_LINE: usize = 64 * 1024;

/// What a line produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Text to print.
    pub output: String,
    /// Whether this was an error.
    pub error: bool,
    /// Whether to leave the REPL.
    pub quit: bool,
}

impl Outcome {
    fn ok(output: String) -> Self {
        Outcome { output, ..Outcome::default() }
    }
    fn err(msg: impl std::fmt::Display) -> Self {
        Outcome { output: format!("error: {}", clean_lines(&msg.to_string())), error: true, quit: false }
    }
}

/// REPL state around a [`Session`].
#[derive(Debug)]
pub struct Repl {
    session: Session,
    filter: Option<String>,
    explain: bool,
    last: Option<(String, Answer)>,
    gallery_dir: PathBuf,
    cancel: Arc<AtomicBool>,
    analyst: AnalystState,
}

/// What the analyst commands keep between lines.
#[derive(Debug, Default)]
struct AnalystState {
    /// The last search, to rerun after feedback or for the next page: label, input, filter;
    /// `None` input: the classifier's ranking.
    query: Option<(String, Option<QueryInput>, Option<String>)>,
    /// The examples the kept classifier was trained on, and its prior text.
    trained_on: Option<(Vec<u64>, Vec<u64>, Option<String>)>,
    /// Places of `\\change`.
    place: Option<crate::analyst::PlaceKey>,
}

const HELP: &str = "\
type a question in any of en, de, fr, es, pt, it, nl, zh, ko, ru to search by text
  WHERE expr           filter the next queries (WHERE alone clears); or: text WHERE expr
  \\like ID             records like record ID
  \\not TEXT            subtract a negative prompt (\\not alone clears)
  \\k N                 results per query
  \\lang xx|auto        language of queries
  \\templates MODE      ensemble, single or off
  \\explain             toggle query plans
  \\schema              fields and types       \\stats   counts and segments
  \\label A, B, C       zero-shot labels for the last results
  \\use NAME            switch collection
  \\show                write an HTML gallery of the last results
  \\import FOLDER [--min-valid F]  import imagery into this collection (Ctrl-C stops, keeps what is done;
                       tiles with a share of valid pixels under F, default 0.5, are not encoded)
  \\good ID ...         mark relevant results: the last query moves towards them (Rocchio) and reruns
  \\bad ID ...          mark results that are not relevant: the query moves away from them
  \\feedback on|off|clear   use, pause or forget the marks   \\rocchio A B C   weights (1 0.75 0.15)
  \\classify [TEXT]     train a classifier on the marks (TEXT: prior) and show the best by probability
  \\classifier [off]    show (or drop) the kept classifier; \\classify reuses it while the marks hold
  \\min S|off           every match scoring at least S (probability after \\classify)
  \\offset N, \\more    page through the results
  \\group FIELD [N]|off at most N results per value of FIELD (e.g. scene)
  \\diverse L|off       maximal marginal relevance, lambda L in 0..1
  \\merge on|off        join hits whose footprints touch into places (km2)
  \\change BEFORE AFTER TEXT   places ranked by how much better they match TEXT after than before
  \\change grid DEG | \\change by FIELD   places of \\change: grid cells (default 0.01 deg) or a field
  \\help                this text              \\q       quit (or Ctrl-D)";

impl Repl {
    /// A REPL over `session`; galleries are written to `gallery_dir`.
    #[must_use]
    pub fn new(session: Session, gallery_dir: PathBuf) -> Repl {
        Repl {
            session,
            filter: None,
            explain: false,
            last: None,
            gallery_dir,
            cancel: Arc::default(),
            analyst: AnalystState::default(),
        }
    }

    /// The flag that cancels a long command (`\\import`): a Ctrl-C handler sets it; the REPL
    /// clears it before each command.
    #[must_use]
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// The session.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The prompt to show.
    #[must_use]
    pub fn prompt(&self) -> String {
        let f = if self.filter.is_some() { " [filtered]" } else { "" };
        format!("skysift:{}{f}> ", clean(self.session.collection()))
    }

    /// Completions for the word being typed at the end of `line`.
    #[must_use]
    pub fn complete(&self, line: &str) -> Vec<String> {
        let word = line.rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',').next().unwrap_or("");
        let mut out: Vec<String> = Vec::new();
        if line.trim_start().starts_with('\\') && !line.contains(' ') {
            out.extend(COMMANDS.iter().filter(|c| c.starts_with(word)).map(|c| (*c).to_owned()));
        } else if line.trim_start().starts_with("\\use ") {
            out.extend(self.session.db().collections().into_iter().filter(|c| c.starts_with(word)));
        } else if let Ok(col) = self.session.snapshot() {
            out.extend(
                col.schema().fields.iter().map(|f| f.name.clone()).filter(|n| !word.is_empty() && n.starts_with(word)),
            );
            if "WHERE".starts_with(word) && !word.is_empty() {
                out.push("WHERE".into());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Handles one line.
    pub fn handle_line(&mut self, line: &str) -> Outcome {
        if line.len() > MAX_LINE {
            return Outcome::err(format!("line longer than {MAX_LINE} bytes"));
        }
        let line = line.trim();
        if line.is_empty() {
            return Outcome::default();
        }
        if let Some(cmd) = line.strip_prefix('\\') {
            return self.command(cmd);
        }
        if let Some(rest) = strip_keyword(line, "WHERE") {
            let rest = rest.trim();
            if rest.is_empty() {
                self.filter = None;
                return Outcome::ok("filter cleared".into());
            }
            if let Err(e) = self.check_filter(rest) {
                return Outcome::err(e);
            }
            self.filter = Some(rest.to_owned());
            return Outcome::ok(format!("filter set: {}", clean(rest)));
        }
        let (text, filter) = match find_keyword(line, "WHERE") {
            Some(i) => (line.get(..i).unwrap_or("").trim(), Some(line.get(i + 5..).unwrap_or("").trim().to_owned())),
            None => (line, self.filter.clone()),
        };
        if text.is_empty() {
            return Outcome::err("nothing to search for before WHERE");
        }
        self.run(text.to_owned(), &QueryInput::Text(text.to_owned()), filter.as_deref())
    }

    fn check_filter(&self, expr: &str) -> Result<(), String> {
        let col = self.session.snapshot().map_err(|e| e.to_string())?;
        col.check_filter(expr).map_err(|e| e.to_string())
    }

    fn run(&mut self, label: String, input: &QueryInput, filter: Option<&str>) -> Outcome {
        self.analyst.query = Some((label.clone(), Some(input.clone()), filter.map(str::to_owned)));
        let answer = self.session.ask_filtered(input, filter, self.explain);
        self.shown(label, answer)
    }

    /// Renders an answer and keeps it as the last one (for `\show`, `\export` and feedback).
    fn shown(&mut self, label: String, answer: crate::Result<Answer>) -> Outcome {
        match answer {
            Ok(ans) => {
                let mut out = String::new();
                render(&mut out, &ans);
                self.last = Some((label, ans));
                Outcome::ok(out)
            }
            Err(e) => Outcome::err(e),
        }
    }

    #[expect(clippy::too_many_lines, reason = "one arm per REPL command, in the order of the help text")]
    fn command(&mut self, cmd: &str) -> Outcome {
        let (name, arg) = match cmd.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (cmd, ""),
        };
        match name {
            "q" | "quit" | "exit" => Outcome { quit: true, ..Outcome::default() },
            "help" | "h" | "?" => Outcome::ok(HELP.into()),
            "k" => match arg.parse::<usize>() {
                Ok(k) if k >= 1 => {
                    self.session.k = k;
                    Outcome::ok(format!("k = {k}"))
                }
                _ => Outcome::err("\\k takes a number of results, 1 or more"),
            },
            "lang" => match arg {
                "" | "auto" => {
                    self.session.lang = None;
                    Outcome::ok("language: detected per query".into())
                }
                l if crate::encode::SUPPORTED_LANGUAGES.contains(&l) => {
                    self.session.lang = Some(l.to_owned());
                    Outcome::ok(format!("language: {l}"))
                }
                l => {
                    Outcome::err(format!("unknown language {l:?}; use en, de, fr, es, pt, it, nl, zh, ko, ru or auto"))
                }
            },
            "templates" => {
                let p = match arg {
                    "ensemble" => Prompting::Ensemble,
                    "single" => Prompting::Single,
                    "off" => Prompting::Off,
                    _ => return Outcome::err("\\templates takes ensemble, single or off"),
                };
                self.session.prompting = p;
                Outcome::ok(format!("templates: {arg}"))
            }
            "not" => {
                if arg.is_empty() {
                    self.session.negatives.clear();
                    Outcome::ok("negative prompts cleared".into())
                } else {
                    self.session.negatives.push(arg.to_owned());
                    Outcome::ok(format!("negative prompts: {}", clean(&self.session.negatives.join("; "))))
                }
            }
            "like" => match arg.parse::<u64>() {
                Ok(id) => self.run(format!("like {id}"), &QueryInput::Like(id), self.filter.clone().as_deref()),
                Err(_) => Outcome::err("\\like takes a record id"),
            },
            "explain" => {
                self.explain = !self.explain;
                Outcome::ok(format!("explain {}", if self.explain { "on" } else { "off" }))
            }
            "schema" => self.schema(),
            "stats" => self.stats(),
            "use" => match self.session.use_collection(arg) {
                Ok(()) => {
                    self.filter = None;
                    Outcome::ok(format!("using {}", clean(arg)))
                }
                Err(e) => Outcome::err(e),
            },
            "label" => self.label(arg),
            "show" => self.show(),
            "import" => self.import(arg),
            "good" | "bad" => self.mark(name == "good", arg),
            "feedback" => self.feedback(arg),
            "rocchio" => match crate::analyst::Rocchio::parse(arg) {
                Ok(w) => {
                    self.session.feedback.weights = w;
                    Outcome::ok(format!("Rocchio weights: alpha {}, beta {}, gamma {}", w.alpha, w.beta, w.gamma))
                }
                Err(e) => Outcome::err(e),
            },
            "classify" => self.classify(arg),
            "classifier" => self.classifier(arg),
            "min" => self.min(arg),
            "offset" => match arg.parse::<usize>() {
                Ok(n) => {
                    self.session.refine.offset = n;
                    self.session.refine.cursor = None;
                    Outcome::ok(format!("offset {n}"))
                }
                Err(_) => Outcome::err("\\offset takes a number of results to skip"),
            },
            "more" => {
                self.session.refine.offset += self.session.k;
                self.session.refine.cursor = None;
                self.rerun("\\more pages through the last query; run one first")
            }
            "group" => self.group(arg),
            "diverse" => match arg {
                "off" | "" => {
                    self.session.refine.diverse = None;
                    Outcome::ok("diversity off".into())
                }
                l => match l.parse::<f32>() {
                    Ok(l) if (0.0..=1.0).contains(&l) => {
                        self.session.refine.diverse = Some(l);
                        self.session.refine.group_by = None;
                        self.session.refine.merge_tiles = false;
                        Outcome::ok(format!("diversity: MMR with lambda {l}"))
                    }
                    _ => Outcome::err("\\diverse takes a lambda from 0 to 1, or off"),
                },
            },
            "merge" => match arg {
                "on" => {
                    self.session.refine.merge_tiles = true;
                    self.session.refine.group_by = None;
                    self.session.refine.diverse = None;
                    Outcome::ok("touching tiles are merged into places".into())
                }
                "off" => {
                    self.session.refine.merge_tiles = false;
                    Outcome::ok("tiles are not merged".into())
                }
                _ => Outcome::err("\\merge takes on or off"),
            },
            "change" => self.change(arg),
            other => Outcome::err(format!("unknown command \\{}; \\help lists them", clean(other))),
        }
    }

    /// Reruns the last search (query or classifier ranking) with the current settings.
    fn rerun(&mut self, none: &str) -> Outcome {
        match self.analyst.query.clone() {
            Some((label, Some(input), filter)) => self.run(label, &input, filter.as_deref()),
            Some((label, None, filter)) => self.show_classifier(label, filter.as_deref()),
            None => Outcome::err(none),
        }
    }

    fn ids(arg: &str) -> Result<Vec<u64>, String> {
        let ids: Result<Vec<u64>, _> =
            arg.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()).map(str::parse::<u64>).collect();
        match ids {
            Ok(ids) if !ids.is_empty() => Ok(ids),
            _ => Err("give record ids, separated by spaces or commas".into()),
        }
    }

    fn mark(&mut self, good: bool, arg: &str) -> Outcome {
        let ids = match Self::ids(arg) {
            Ok(ids) => ids,
            Err(e) => return Outcome::err(format!("\\{}: {e}", if good { "good" } else { "bad" })),
        };
        match self.session.snapshot() {
            Ok(col) => {
                if let Some(id) = ids.iter().find(|id| col.get(**id).ok().flatten().is_none()) {
                    return Outcome::err(format!("record {id} is not in {}", clean(col.name())));
                }
            }
            Err(e) => return Outcome::err(e),
        }
        if good {
            self.session.feedback.mark_good(&ids);
        } else {
            self.session.feedback.mark_bad(&ids);
        }
        let head = self.feedback_line();
        // Page one of the moved query.
        self.session.refine.offset = 0;
        self.session.refine.cursor = None;
        let last_is_query = matches!(self.analyst.query, Some((_, Some(_), _)));
        if last_is_query && !self.session.feedback.off {
            let out = self.rerun("");
            if out.error {
                return out;
            }
            return Outcome::ok(format!("{head}\n{}", out.output));
        }
        Outcome::ok(head)
    }

    fn feedback_line(&self) -> String {
        let f = &self.session.feedback;
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        format!(
            "feedback {}: good [{}], bad [{}]; Rocchio alpha {}, beta {}, gamma {}",
            if f.off { "off" } else { "on" },
            list(&f.good),
            list(&f.bad),
            f.weights.alpha,
            f.weights.beta,
            f.weights.gamma
        )
    }

    fn feedback(&mut self, arg: &str) -> Outcome {
        match arg {
            "" => {}
            "off" => self.session.feedback.off = true,
            "on" => self.session.feedback.off = false,
            "clear" => {
                self.session.feedback.good.clear();
                self.session.feedback.bad.clear();
            }
            _ => return Outcome::err("\\feedback takes on, off or clear"),
        }
        Outcome::ok(self.feedback_line())
    }

    fn classify(&mut self, arg: &str) -> Outcome {
        let text = (!arg.is_empty()).then(|| arg.to_owned());
        let f = &self.session.feedback;
        let examples = (f.good.clone(), f.bad.clone(), text.clone());
        let reuse = self.session.classifier.is_some() && self.analyst.trained_on.as_ref() == Some(&examples);
        let mut head = String::new();
        if !reuse {
            match self.session.train_classifier(text.as_deref(), &crate::analyst::TrainOptions::default()) {
                Ok(c) => head = format!("trained: {}", clean_lines(&c.describe())),
                Err(e) => return Outcome::err(e),
            }
            self.analyst.trained_on = Some(examples);
        }
        self.session.refine.offset = 0;
        self.session.refine.cursor = None;
        let label = format!("classifier from good {:?}", self.session.feedback.good);
        let out = self.show_classifier(label, self.filter.clone().as_deref());
        if head.is_empty() || out.error { out } else { Outcome::ok(format!("{head}\n{}", out.output)) }
    }

    fn show_classifier(&mut self, label: String, filter: Option<&str>) -> Outcome {
        self.analyst.query = Some((label.clone(), None, filter.map(str::to_owned)));
        let answer = self.session.ask_classifier(filter);
        self.shown(label, answer)
    }

    fn classifier(&mut self, arg: &str) -> Outcome {
        match (arg, &self.session.classifier) {
            ("off", _) => {
                self.session.classifier = None;
                self.analyst.trained_on = None;
                Outcome::ok("classifier dropped".into())
            }
            ("", Some(c)) => Outcome::ok(clean_lines(&c.describe())),
            ("", None) => Outcome::ok("no classifier: mark examples with \\good and \\bad, then \\classify".into()),
            _ => Outcome::err("\\classifier takes nothing or off"),
        }
    }

    fn min(&mut self, arg: &str) -> Outcome {
        match arg {
            "off" | "" => {
                self.session.refine.min_score = None;
                Outcome::ok("min-score off: the best k".into())
            }
            s => match s.parse::<f32>() {
                Ok(v) if v.is_finite() => {
                    self.session.refine.min_score = Some(v);
                    Outcome::ok(format!("every match scoring at least {v} (pages of k; \\more for the next)"))
                }
                _ => Outcome::err("\\min takes a score, or off"),
            },
        }
    }

    fn group(&mut self, arg: &str) -> Outcome {
        let mut parts = arg.split_whitespace();
        match (parts.next(), parts.next()) {
            (None | Some("off"), None) => {
                self.session.refine.group_by = None;
                Outcome::ok("grouping off".into())
            }
            (Some(field), n) => {
                let per = match n.map(str::parse::<usize>) {
                    None => 1,
                    Some(Ok(n)) if n > 0 => n,
                    _ => return Outcome::err("\\group FIELD [N]: N is a number of results per group"),
                };
                match self.session.snapshot() {
                    Ok(col) if col.schema().field_index(field).is_some() => {
                        self.session.refine.group_by = Some(field.to_owned());
                        self.session.refine.per_group = per;
                        self.session.refine.diverse = None;
                        self.session.refine.merge_tiles = false;
                        Outcome::ok(format!("at most {per} result(s) per {}", clean(field)))
                    }
                    Ok(_) => Outcome::err(format!("no field {}; \\schema lists them", clean(field))),
                    Err(e) => Outcome::err(e),
                }
            }
            (None, Some(_)) => Outcome::err("\\group FIELD [N]"),
        }
    }

    fn change(&mut self, arg: &str) -> Outcome {
        let mut parts = arg.splitn(3, char::is_whitespace);
        let (a, b, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("").trim());
        if a == "grid" {
            return match b.parse::<f64>() {
                Ok(d) if d > 0.0 && d.is_finite() => {
                    self.analyst.place =
                        Some(crate::analyst::PlaceKey::Grid { cell_deg: d, field: "footprint".into() });
                    Outcome::ok(format!("\\change places: grid cells of {d} degrees"))
                }
                _ => Outcome::err("\\change grid DEG: a cell size in degrees"),
            };
        }
        if a == "by" {
            if b.is_empty() {
                return Outcome::err("\\change by FIELD");
            }
            self.analyst.place = Some(crate::analyst::PlaceKey::Field(b.to_owned()));
            return Outcome::ok(format!("\\change places: same {}", clean(b)));
        }
        let parse = crate::time::parse_timestamp;
        let (Some(before), Some(after)) = (parse(a), parse(b)) else {
            return Outcome::err("\\change BEFORE AFTER TEXT, dates as YYYY-MM-DD");
        };
        if rest.is_empty() {
            return Outcome::err("\\change BEFORE AFTER TEXT: what to look for is missing");
        }
        let place = self.analyst.place.clone().unwrap_or(crate::analyst::PlaceKey::Grid {
            cell_deg: crate::analyst::DEFAULT_CELL_DEG,
            field: "footprint".into(),
        });
        let opts = crate::analyst::ChangeOptions { before, after, time_field: None, place, loss: false };
        let filter = self.filter.clone();
        match self.session.change(rest, filter.as_deref(), &opts) {
            Ok((_, ans)) => {
                let mut out = String::new();
                render(&mut out, &ans);
                self.last = Some((format!("change: {rest} ({a} -> {b})"), ans));
                Outcome::ok(out)
            }
            Err(e) => Outcome::err(e),
        }
    }

    fn import(&mut self, arg: &str) -> Outcome {
        if arg.is_empty() {
            return Outcome::err("\\import takes a folder of imagery (GeoTIFF, PNG, JPEG; STAC or JSON sidecars)");
        }
        let (arg, min_valid) = match arg.rsplit_once(" --min-valid ") {
            Some((f, v)) => match v.trim().parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => (f.trim(), x),
                _ => {
                    return Outcome::err(format!(
                        "\\import: --min-valid takes a share between 0 and 1, not {}",
                        clean(v)
                    ));
                }
            },
            None => (arg, crate::ingest::nodata::DEFAULT_MIN_VALID),
        };
        let folder = PathBuf::from(arg);
        if !folder.is_dir() {
            return Outcome::err(format!("\\import: {} is not a folder", clean(arg)));
        }
        self.cancel.store(false, Ordering::SeqCst);
        match self.session.import_folder_with(&folder, Arc::clone(&self.cancel), min_valid) {
            Ok(s) => {
                let mut text = format!(
                    "imported {} files ({} new tiles, {} unchanged) into {} in {:.1}s; {} skipped, {} failed",
                    s.count(Status::Imported),
                    s.tiles_written,
                    s.tiles_reused,
                    clean(&s.collection),
                    s.seconds,
                    s.count(Status::Skipped),
                    s.count(Status::Failed),
                );
                for (reason, n) in &s.by_reason {
                    let _ = write!(text, "\n  {n} {}", clean(reason));
                }
                if s.interrupted {
                    let _ = write!(
                        text,
                        "\ninterrupted: {} files not reached; \\import the same folder again to continue",
                        s.not_started
                    );
                }
                Outcome::ok(text)
            }
            Err(e) => Outcome::err(format!("\\import: {e}")),
        }
    }

    fn schema(&self) -> Outcome {
        match self.session.snapshot() {
            Ok(col) => {
                let mut s =
                    format!("{} (dim {}, {})\n", clean(col.name()), col.schema().dim, col.schema().metric.name());
                for f in &col.schema().fields {
                    let _ = writeln!(s, "  {:<24} {}", clean(&f.name), f.ty.name());
                }
                Outcome::ok(s.trim_end().to_owned())
            }
            Err(e) => Outcome::err(e),
        }
    }

    fn stats(&self) -> Outcome {
        if let Err(e) = self.session.db().refresh() {
            return Outcome::err(e);
        }
        match self.session.snapshot() {
            Ok(col) => {
                let mut s = format!("{}: {} records\n", clean(col.name()), col.count());
                for seg in col.index_state() {
                    let _ = writeln!(
                        s,
                        "  segment {}: {} rows, {}",
                        seg.segment,
                        seg.rows,
                        if seg.graph_levels.is_some() { "graph + int8 codes" } else { "exact scan" }
                    );
                }
                let _ = write!(s, "  in memory: {} rows", col.memory_rows());
                Outcome::ok(s)
            }
            Err(e) => Outcome::err(e),
        }
    }

    fn label(&mut self, arg: &str) -> Outcome {
        let labels: Vec<String> = arg.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        if labels.is_empty() {
            return Outcome::err("\\label takes labels separated by commas");
        }
        let Some((_, ans)) = &self.last else { return Outcome::err("run a query first; \\label labels its results") };
        let ids: Vec<u64> = ans.rows.iter().map(|r| r.id).collect();
        match self.session.label_ids(&ids, &labels) {
            Ok(rows) => {
                let mut s = String::new();
                for (id, best) in rows {
                    let shown: Vec<String> = best.iter().map(|(l, sc)| format!("{} ({sc:.3})", clean(l))).collect();
                    let _ = writeln!(s, "{id:>12}  {}", shown.join(", "));
                }
                Outcome::ok(s.trim_end().to_owned())
            }
            Err(e) => Outcome::err(e),
        }
    }

    fn show(&self) -> Outcome {
        let Some((label, ans)) = &self.last else { return Outcome::err("run a query first; \\show draws its results") };
        match crate::gallery::write(&self.gallery_dir, label, ans) {
            Ok(path) => Outcome::ok(format!("gallery: {}", path.display())),
            Err(e) => Outcome::err(e),
        }
    }
}

/// The rest of `line` after a leading case-insensitive keyword followed by a space or the end.
fn strip_keyword<'a>(line: &'a str, kw: &str) -> Option<&'a str> {
    let head = line.get(..kw.len())?;
    let rest = line.get(kw.len()..)?;
    (head.eq_ignore_ascii_case(kw) && (rest.is_empty() || rest.starts_with(char::is_whitespace))).then_some(rest)
}

/// Byte offset of a standalone case-insensitive keyword outside quotes.
fn find_keyword(line: &str, kw: &str) -> Option<usize> {
    let mut quote = None;
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, _) => {
                let before_ok = i == 0 || bytes.get(i - 1).is_some_and(u8::is_ascii_whitespace);
                if before_ok && strip_keyword(line.get(i..).unwrap_or(""), kw).is_some() {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_found_outside_quotes_only() {
        assert_eq!(find_keyword("ports WHERE year > 2020", "WHERE"), Some(6));
        assert_eq!(find_keyword("ports where year > 2020", "WHERE"), Some(6));
        assert_eq!(find_keyword("'a WHERE b'", "WHERE"), None);
        assert_eq!(find_keyword("nowhere", "WHERE"), None);
        assert_eq!(strip_keyword("WHERE", "WHERE"), Some(""));
        assert_eq!(strip_keyword("WHEREVER", "WHERE"), None);
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
