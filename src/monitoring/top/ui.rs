//! Draws a [`View`] with ratatui: a summary line, blocks, managers (one selected), the rate of
//! tries ending over the last minute, and failures by reason.

use super::{View, RATE_SECONDS};
use crate::wire::ManagerMode;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

/// What the frame is about and what happened last (a key's answer).
pub struct Chrome<'a> {
    /// The run directory or connection file shown.
    pub title: &'a str,
    /// The answer to the last key, if any.
    pub message: Option<&'a str>,
}

fn mode_name(m: ManagerMode) -> &'static str {
    match m {
        ManagerMode::Active => "active",
        ManagerMode::Held => "held",
        ManagerMode::Draining => "draining",
    }
}

/// Draw one frame; `selected` is the highlighted manager.
pub fn draw(f: &mut Frame<'_>, v: &View, selected: &mut TableState, chrome: &Chrome<'_>) {
    let blocks_h = (v.blocks.len() as u16 + 3).min(8);
    let failures_h = (v.failures.len() as u16 + 2).clamp(3, 7);
    let [head, blocks, managers, rate, failures, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(blocks_h),
        Constraint::Min(5),
        Constraint::Length(6),
        Constraint::Length(failures_h),
        Constraint::Length(1),
    ])
    .areas(f.area());

    let (slots, busy) = v.slots();
    let now = v.rates.last().copied().unwrap_or(0);
    let tasks: Vec<String> = v.tasks.iter().map(|(k, n)| format!("{} {n}", k.replace('_', " "))).collect();
    let summary = if v.interchange {
        format!(
            "queued {}  in flight {}  managers {}  slots {busy}/{slots} busy  ended {now}/s",
            v.queued,
            v.in_flight,
            v.managers.len()
        )
    } else {
        "the interchange is not answering (the run may be over): showing the run database".to_string()
    };
    let tasks = if v.database {
        format!("tasks: {}", if tasks.is_empty() { "none yet".into() } else { tasks.join("  ") })
    } else {
        "no run database (started with --no-monitoring, or only --connection given)".to_string()
    };
    f.render_widget(
        Paragraph::new(vec![Line::from(format!("strand top  {}  {summary}", chrome.title)), Line::from(tasks)]),
        head,
    );

    let rows = v
        .blocks
        .iter()
        .map(|b| Row::new(vec![b.block.clone(), b.state.clone(), b.managers.to_string(), b.slots.to_string()]));
    let widths = [Constraint::Percentage(40), Constraint::Percentage(20), Constraint::Length(9), Constraint::Length(6)];
    f.render_widget(
        Table::new(rows, widths)
            .header(
                Row::new(vec!["block", "state", "managers", "slots"]).style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(Block::default().borders(Borders::ALL).title("Blocks")),
        blocks,
    );

    let rows = v.managers.iter().map(|m| {
        Row::new(vec![
            m.id.to_string(),
            m.host.clone(),
            m.block.clone(),
            format!("{}/{}", m.busy, m.slots),
            m.queued.to_string(),
            mode_name(m.mode).to_string(),
            format!("{:.0} s", m.idle_s),
        ])
    });
    let widths = [
        Constraint::Length(25),
        Constraint::Percentage(20),
        Constraint::Percentage(20),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
    ];
    f.render_stateful_widget(
        Table::new(rows, widths)
            .header(
                Row::new(vec!["manager", "host", "block", "busy", "queued", "mode", "idle"])
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("Managers  (up/down or j/k select; h hold, r release, d drain)"),
            ),
        managers,
        selected,
    );

    let peak = v.rates.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!("Tries ended per second, last {RATE_SECONDS} s (peak {peak}/s)")),
            )
            .data(&v.rates),
        rate,
    );

    let lines: Vec<Line<'_>> = if v.failures.is_empty() {
        vec![Line::from("none")]
    } else {
        v.failures.iter().map(|(k, n)| Line::from(format!("{k}: {n}"))).collect()
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title("Failed tries by reason")),
        failures,
    );
    f.render_widget(Paragraph::new(chrome.message.unwrap_or("q quits")), foot);
}
