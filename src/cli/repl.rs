//! `skysift repl DB`: line editing and history (rustyline), completion, Ctrl-C cancels the
//! line, Ctrl-D or `\q` quits. All logic lives in `skysift::repl`.

use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use skysift::repl::Repl;
use skysift::session::Session;

use super::query::QueryOpts;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// Where `\show` writes galleries.
    #[arg(long, default_value = ".")]
    gallery_dir: PathBuf,
    #[command(flatten)]
    opts: QueryOpts,
}

struct Complete {
    words: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Completer for Complete {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.rfind(|c: char| c.is_whitespace() || c == '(' || c == ',').map_or(0, |i| i + 1);
        let word = head.get(start..).unwrap_or("");
        let words = self.words.lock().map(|w| w.clone()).unwrap_or_default();
        let out = words
            .into_iter()
            .filter(|w| w.starts_with(word))
            .map(|w| Pair { display: w.clone(), replacement: w })
            .collect();
        Ok((start, out))
    }
}
impl Hinter for Complete {
    type Hint = String;
}
impl Highlighter for Complete {}
impl Validator for Complete {}
impl Helper for Complete {}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let mut s: Session = super::query::session(&a.db, &a.opts)?;
    // The text tower loads while the user reads the banner and types the first question.
    s.preload_encoder();
    let mut repl = Repl::new(s, a.gallery_dir.clone());
    // Ctrl-C while a query runs must not kill the REPL; at the prompt rustyline handles it.
    // Ctrl-C during `\import` stops it between tiles, keeping what was encoded.
    let cancel = repl.cancel_flag();
    let _ = ctrlc::set_handler(move || cancel.store(true, std::sync::atomic::Ordering::SeqCst));
    let words = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut rl: Editor<Complete, rustyline::history::DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(Complete { words: std::sync::Arc::clone(&words) }));
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".skysift_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    super::outln!(
        "skysift REPL on {} ({}): type a question, \\help for commands, \\q to quit",
        a.db.display(),
        repl.session().collection()
    );
    loop {
        if let Ok(mut w) = words.lock() {
            *w = repl.complete("");
            w.extend(skysift::repl::COMMANDS.iter().map(|c| (*c).to_owned()));
            if let Ok(col) = repl.session().snapshot() {
                w.extend(col.schema().fields.iter().map(|f| f.name.clone()));
            }
            w.extend(repl.session().db().collections());
        }
        match rl.readline(&repl.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                let out = repl.handle_line(&line);
                if !out.output.is_empty() {
                    if out.error {
                        eprintln!("{}", out.output);
                    } else {
                        super::outln!("{}", out.output);
                    }
                }
                if out.quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => super::outln!("(Ctrl-C: line cancelled; \\q or Ctrl-D quits)"),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}
