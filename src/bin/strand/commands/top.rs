//! `strand top`: a live terminal view of a run (blocks, managers, queue, rates, failures),
//! with keys to hold, release or drain a manager. Works over SSH on a login node.

use anyhow::{bail, Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::widgets::TableState;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::monitoring::top::{action_of, from_database, from_status, ui, Action, View};
use strand::run_dir::{CONNECTION_FILE, MONITORING_DB};

/// `strand top` arguments.
#[derive(clap::Args)]
#[command(after_help = "Keys: up/down or j/k select a manager; h hold, r release, d drain it; q quits. \
Reads the interchange's status (RUN_DIR/connection.json, or --connection) and the run database \
(RUN_DIR/monitoring.db) once per --interval.")]
pub struct Args {
    /// A run directory of `strand run` / `strand map`.
    #[arg(value_name = "RUN_DIR", required_unless_present = "connection")]
    run_dir: Option<PathBuf>,
    /// Connection file of the interchange [default: RUN_DIR/connection.json].
    #[arg(long, value_name = "FILE")]
    connection: Option<PathBuf>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    interval: f64,
}

/// Run until `q`; exit 0.
pub fn exec(a: Args) -> Result<i32> {
    let interval = super::seconds("--interval", a.interval)?;
    let run_dir = a.run_dir.as_deref().map(std::path::absolute).transpose().context("resolving RUN_DIR")?;
    let conn_file = match (&a.connection, &run_dir) {
        (Some(c), _) => Some(std::path::absolute(c).context("resolving --connection")?),
        (None, Some(d)) => Some(d.join(CONNECTION_FILE)).filter(|p| p.is_file()),
        (None, None) => None,
    };
    let db_file = run_dir.as_ref().map(|d| d.join(MONITORING_DB)).filter(|p| p.is_file());
    if conn_file.is_none() && db_file.is_none() {
        bail!(
            "{} has neither a connection file nor a run database: give a run directory of strand run or strand map, or --connection FILE",
            run_dir.map(|d| d.display().to_string()).unwrap_or_default()
        );
    }
    let mut client = match &conn_file {
        Some(p) => Some(Client::connect(&ConnectionInfo::load(p)?)?),
        None => None,
    };
    // The run may be creating its database right now: it is opened when it is ready.
    let db = Database { file: run_dir.as_ref().map(|d| d.join(MONITORING_DB)), conn: None };
    let title = run_dir.or(conn_file).map(|p| p.display().to_string()).unwrap_or_default();
    let mut terminal = ratatui::try_init().context("starting the terminal view (is stdout a terminal?)")?;
    let result = run(&mut terminal, client.as_mut(), db, &title, interval);
    ratatui::restore();
    result
}

/// The run database, opened once it exists and holds a run.
struct Database {
    file: Option<PathBuf>,
    conn: Option<rusqlite::Connection>,
}

impl Database {
    /// The connection, opening it if the file is ready now; why not, if it is not.
    fn get(&mut self) -> Result<Option<&rusqlite::Connection>, String> {
        if self.conn.is_none() {
            match &self.file {
                Some(f) if f.is_file() => match strand::monitoring::db::open_to_read(f) {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => return Err(e.to_string()),
                },
                _ => return Ok(None),
            }
        }
        Ok(self.conn.as_ref())
    }
}

fn run(
    terminal: &mut ratatui::DefaultTerminal,
    mut client: Option<&mut Client>,
    mut db: Database,
    title: &str,
    interval: Duration,
) -> Result<i32> {
    let mut selected = TableState::default().with_selected(Some(0));
    let mut message: Option<String> = None;
    // Why the database cannot be read now (shown until it can).
    let mut db_note: Option<String> = None;
    let mut view = View::default();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            view = View::default();
            db_note = match db.get() {
                Ok(Some(c)) => from_database(&mut view, c, strand::monitoring::record::now_us())
                    .err()
                    .map(|e| format!("reading the run database: {e}")),
                Ok(None) => None,
                Err(e) => Some(e),
            };
            if let Some(c) = client.as_deref_mut() {
                if let Ok(report) = c.status(Duration::from_secs(2)) {
                    from_status(&mut view, &report);
                }
            }
            if let Some(i) = selected.selected() {
                selected.select(Some(i.min(view.managers.len().saturating_sub(1))));
            }
            next = Instant::now() + interval;
        }
        let chrome = ui::Chrome { title, message: message.as_deref().or(db_note.as_deref()) };
        terminal.draw(|f| ui::draw(f, &view, &mut selected, &chrome))?;
        if !event::poll(next.saturating_duration_since(Instant::now()))? {
            continue;
        }
        let Event::Key(key) = event::read()? else { continue };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let action = match key.code {
            KeyCode::Up => Action::Move(-1),
            KeyCode::Down => Action::Move(1),
            KeyCode::Esc => Action::Quit,
            KeyCode::Char(c) => action_of(c),
            _ => Action::None,
        };
        match action {
            Action::Quit => return Ok(0),
            Action::Move(d) => {
                let n = view.managers.len();
                if n > 0 {
                    let i = selected.selected().unwrap_or(0) as i64 + i64::from(d);
                    selected.select(Some(i.clamp(0, n as i64 - 1) as usize));
                }
            }
            Action::Set(mode) => {
                let target = selected.selected().and_then(|i| view.managers.get(i)).map(|m| m.id);
                message = Some(match (target, client.as_deref_mut()) {
                    (Some(id), Some(c)) => match c.set_mode(id, mode, Duration::from_secs(5)) {
                        Ok((true, _)) => format!("{id}: now {mode:?}"),
                        Ok((false, why)) => format!("{id}: refused: {why}"),
                        Err(e) => format!("{id}: {e}"),
                    },
                    (None, _) => "no manager selected".into(),
                    (_, None) => "no interchange to ask".into(),
                });
                next = Instant::now();
            }
            Action::None => {}
        }
    }
}
