//! A [`Report`] as one self-contained HTML page: inline CSS and SVG, no script, no network, so
//! it opens from a cluster's shared filesystem in any browser.

use super::{Report, Sampled};
use std::fmt::Write;

const W: f64 = 900.0;
const H: f64 = 220.0;
/// Left margin (axis labels).
const ML: f64 = 60.0;
/// Bottom margin (time axis).
const MB: f64 = 24.0;
/// Top margin (the y axis's label) and right margin (the last time label).
const MT: f64 = 16.0;
const MR: f64 = 24.0;
/// Width of the plotting area.
const PW: f64 = W - ML - MR;
/// The Gantt chart's left margin (its lanes' names) and plotting width.
const GL: f64 = 150.0;
const GW: f64 = W - GL - MR;
/// Axis text, as attributes rather than the page's CSS, so that a chart's SVG stands alone.
const AX: &str = r##"font-size="10" fill="#555""##;
const COLORS: [&str; 9] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A duration in µs as people read it.
pub fn human_us(us: f64) -> String {
    if us < 1e3 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else if us < 120e6 {
        format!("{:.2} s", us / 1e6)
    } else {
        format!("{:.1} min", us / 60e6)
    }
}

/// A size in KiB as people read it.
pub fn human_kib(k: u64) -> String {
    if k < 1024 {
        format!("{k} KiB")
    } else if k < 1024 * 1024 {
        format!("{:.1} MiB", k as f64 / 1024.0)
    } else {
        format!("{:.2} GiB", k as f64 / (1024.0 * 1024.0))
    }
}

/// One chart of the page as a standalone SVG document: what `strand report --png` draws.
pub struct Figure {
    /// Its file name without `.png`: `running`, `utilization`, `blocks`, `durations`, `workers`
    /// or `queued`.
    pub name: &'static str,
    /// The SVG document: the page's inline SVG with its namespace.
    pub svg: String,
}

/// A report drawn: the page and its charts.
pub struct Page {
    /// The self-contained HTML page.
    pub html: String,
    /// Its charts, in page order.
    pub figures: Vec<Figure>,
}

/// Open a chart's `<svg>` (with a font and a white ground, so that it also stands alone as a
/// file); returns where its attributes start in `out`.
fn svg_open(out: &mut String, label: &str, height: f64) -> usize {
    out.push_str("<svg");
    let at = out.len();
    let _ = write!(
        out,
        r##" font-family="DejaVu Sans, sans-serif" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{}"><rect width="{W}" height="{height}" fill="#fff"/>"##,
        esc(label)
    );
    at
}

/// Close the chart opened at `at` and keep it as the figure `name`, with the SVG namespace that
/// a file of its own needs (the page's HTML parser needs none).
fn svg_close(out: &mut String, at: usize, name: &'static str, figures: &mut Vec<Figure>) {
    out.push_str("</svg>");
    figures.push(Figure { name, svg: format!(r#"<svg xmlns="http://www.w3.org/2000/svg"{}"#, &out[at..]) });
}

/// An SVG chart frame with a y axis from 0 to `ymax` and a time axis over `secs` seconds, after
/// its `<h2>` title; returns what [`svg_open`] returned (for [`svg_close`]).
fn frame(out: &mut String, title: &str, ymax: f64, ylabel: &str, secs: f64, height: f64) -> usize {
    let _ = write!(out, "<h2>{}</h2>", esc(title));
    let at = svg_open(out, title, height);
    let ph = height - MB - MT;
    let (top, bottom, right) = (MT, MT + ph, ML + PW);
    let _ = write!(
        out,
        r##"<line x1="{ML}" y1="{top}" x2="{ML}" y2="{bottom}" stroke="#888"/><line x1="{ML}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>"##
    );
    for i in 0..=4 {
        let y = MT + ph - ph * i as f64 / 4.0;
        let v = ymax * i as f64 / 4.0;
        let label = if ymax <= 4.0 { format!("{v:.2}") } else { format!("{v:.0}") };
        let _ = write!(out, r#"<text x="{}" y="{}" {AX} text-anchor="end">{label}</text>"#, ML - 4.0, y + 4.0);
    }
    for i in 0..=5 {
        let x = ML + PW * i as f64 / 5.0;
        let _ = write!(
            out,
            r#"<text x="{x}" y="{}" {AX} text-anchor="middle">{:.1} s</text>"#,
            height - 6.0,
            secs * i as f64 / 5.0
        );
    }
    let _ = write!(out, r#"<text x="{}" y="11" {AX}>{}</text>"#, ML + 4.0, esc(ylabel));
    at
}

/// Stacked areas over the time bins.
fn stacked(out: &mut String, series: &[(String, Vec<f64>)], ymax: f64, height: f64) {
    let ph = height - MB - MT;
    let n = series.first().map_or(0, |s| s.1.len());
    if n == 0 {
        return;
    }
    let x = |i: usize| ML + PW * i as f64 / n as f64;
    let y = |v: f64| MT + ph - ph * (v / ymax).min(1.0);
    let mut base = vec![0.0; n];
    for (k, (_, vals)) in series.iter().enumerate() {
        let top: Vec<f64> = base.iter().zip(vals).map(|(b, v)| b + v).collect();
        let mut pts = String::new();
        for (i, t) in top.iter().enumerate() {
            let _ = write!(pts, "{:.1},{:.1} {:.1},{:.1} ", x(i), y(*t), x(i + 1), y(*t));
        }
        for i in (0..n).rev() {
            let _ = write!(pts, "{:.1},{:.1} {:.1},{:.1} ", x(i + 1), y(base[i]), x(i), y(base[i]));
        }
        let _ = write!(out, r#"<polygon points="{pts}" fill="{}" opacity="0.85"/>"#, COLORS[k % COLORS.len()]);
        base = top;
    }
}

/// A line over the time bins.
fn line(out: &mut String, vals: &[f64], ymax: f64, color: &str, dash: bool, height: f64) {
    let ph = height - MB - MT;
    let n = vals.len().max(1);
    let mut pts = String::new();
    for (i, v) in vals.iter().enumerate() {
        let xa = ML + PW * i as f64 / n as f64;
        let xb = ML + PW * (i + 1) as f64 / n as f64;
        let yy = MT + ph - ph * (v / ymax).min(1.0);
        let _ = write!(pts, "{xa:.1},{yy:.1} {xb:.1},{yy:.1} ");
    }
    let dash = if dash { r#" stroke-dasharray="5,4""# } else { "" };
    let _ = write!(out, r#"<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>"#);
}

/// A legend in the chart's top margin, right-aligned (inside the SVG, so a PNG of the chart has it).
fn legend(out: &mut String, names: &[(&str, &str)]) {
    // DejaVu Sans at 10 px is about 6 px a character.
    let width = |name: &str| 14.0 + 6.0 * name.chars().count() as f64 + 12.0;
    // Right-aligned, but never over the y axis's label (a long legend runs off the right instead).
    let mut x = (W - MR - names.iter().map(|(n, _)| width(n)).sum::<f64>()).max(ML + 100.0);
    for (name, color) in names {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="3" width="9" height="9" fill="{color}"/><text x="{:.1}" y="11" {AX}>{}</text>"#,
            x + 13.0,
            esc(name)
        );
        x += width(name);
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|&m| m >= v).unwrap_or(10.0 * p)
}

/// The whole page.
pub fn render(r: &Report) -> String {
    page(r).html
}

/// Draw the page and keep each chart of it as a [`Figure`].
pub fn page(r: &Report) -> Page {
    let mut figures = Vec::new();
    let s = &r.summary;
    let secs = (r.span_us.1 - r.span_us.0) as f64 / 1e6;
    let mut o = String::with_capacity(1 << 18);
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>strand report: run {} of {}</title><style>{}</style></head><body>",
        r.run.run,
        esc(&r.db.display().to_string()),
        CSS
    );
    let _ = write!(
        o,
        "<h1>strand report</h1><p class=\"sub\">{} &middot; run {} of {} in the file &middot; strand {}</p><p class=\"cmd\"><code>{}</code></p>",
        esc(&r.db.display().to_string()),
        r.run.run,
        r.run.runs_in_file,
        esc(&r.run.version),
        esc(&r.run.command)
    );
    for n in &r.notes {
        let _ = write!(o, "<p class=\"note\">{}</p>", esc(n));
    }
    // Summary.
    o.push_str("<h2>Summary</h2><table class=\"summary\">");
    let mut row = |k: &str, id: &str, v: String| {
        let _ = write!(o, "<tr><th>{}</th><td id=\"{id}\">{}</td></tr>", esc(k), esc(&v));
    };
    row("tasks", "tasks", s.tasks.to_string());
    for (state, n) in &s.by_state {
        row(&format!("tasks {}", state.replace('_', " ")), &format!("tasks-{state}"), n.to_string());
    }
    row("tries", "tries", s.tries.to_string());
    row("retries (tries beyond a task's first)", "retries", s.retries.to_string());
    row("makespan", "makespan", format!("{secs:.3} s"));
    row("busy worker time", "busy", format!("{:.3} s", s.busy_s));
    row(
        "utilization (busy / slots offered)",
        "utilization",
        s.utilization.map_or("unknown (no manager was seen)".into(), |u| format!("{:.1}%", u * 100.0)),
    );
    row("managers", "managers", s.managers.to_string());
    row("blocks", "blocks", s.blocks.to_string());
    o.push_str("</table>");

    // Tasks running over time, stacked by app, with the slots offered.
    let top = r.running.iter().fold(vec![0.0; super::BINS], |mut acc, (_, v)| {
        for (a, x) in acc.iter_mut().zip(v) {
            *a += x;
        }
        acc
    });
    let ymax = nice_max(top.iter().chain(&r.capacity).copied().fold(0.0, f64::max) * 1.1);
    let at = frame(&mut o, "Tries running, by app", ymax, "tries", secs, H);
    stacked(&mut o, &r.running, ymax, H);
    line(&mut o, &r.capacity, ymax, "#333", true, H);
    let mut names: Vec<(&str, &str)> =
        r.running.iter().enumerate().map(|(i, (n, _))| (n.as_str(), COLORS[i % COLORS.len()])).collect();
    names.push(("worker slots offered", "#333"));
    legend(&mut o, &names);
    svg_close(&mut o, at, "running", &mut figures);

    // Utilization over time.
    let util: Vec<f64> =
        top.iter().zip(&r.capacity).map(|(b, c)| if *c > 0.0 { (b / c).min(1.0) } else { 0.0 }).collect();
    let at = frame(&mut o, "Worker utilization", 1.0, "busy / offered", secs, H * 0.7);
    line(&mut o, &util, 1.0, COLORS[0], false, H * 0.7);
    svg_close(&mut o, at, "utilization", &mut figures);

    // Blocks over time.
    if s.blocks > 0 {
        let bmax = nice_max(r.blocks.iter().map(|(p, u)| p + u).fold(0.0, f64::max));
        let at = frame(&mut o, "Blocks (the strategy's view)", bmax, "blocks", secs, H * 0.7);
        let series = vec![
            ("running".to_string(), r.blocks.iter().map(|b| b.1).collect()),
            ("pending".to_string(), r.blocks.iter().map(|b| b.0).collect()),
        ];
        stacked(&mut o, &series, bmax, H * 0.7);
        legend(&mut o, &[("running", COLORS[0]), ("pending", COLORS[1])]);
        svg_close(&mut o, at, "blocks", &mut figures);
    }

    // Run-time histogram per app.
    if !r.durations.is_empty() {
        let _ = write!(o, "<h2>Run time of tries, by app</h2>");
        o.push_str("<table><tr><th>app</th><th>tries</th><th>median</th><th>95th pct</th><th>longest</th></tr>");
        for d in &r.durations {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.app),
                d.n,
                human_us(d.p50_us as f64),
                human_us(d.p95_us as f64),
                human_us(d.max_us as f64)
            );
        }
        o.push_str("</table>");
        let cmax = r.durations.iter().flat_map(|d| d.counts.iter()).copied().max().unwrap_or(1) as f64;
        let h = H;
        let ph = h - MB - MT;
        let at = svg_open(&mut o, "run-time histogram", h);
        let nb = r.duration_edges_us.len().saturating_sub(1).max(1);
        let bw = PW / nb as f64;
        let k = r.durations.len() as f64;
        for (a, d) in r.durations.iter().enumerate() {
            for (i, c) in d.counts.iter().enumerate() {
                if *c == 0 {
                    continue;
                }
                let bh = ph * (*c as f64 / cmax);
                let x = ML + bw * i as f64 + bw * a as f64 / k;
                let _ = write!(
                    o,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{}: {c}</title></rect>"#,
                    MT + ph - bh,
                    (bw / k).max(1.0),
                    COLORS[a % COLORS.len()],
                    esc(&d.app)
                );
            }
        }
        for i in (0..=nb).step_by(5) {
            let x = ML + bw * i as f64;
            let e = r.duration_edges_us.get(i).copied().unwrap_or(0) as f64;
            let _ = write!(o, r#"<text x="{x:.1}" y="{}" {AX} text-anchor="middle">{}</text>"#, h - 6.0, human_us(e));
        }
        let _ = write!(o, r#"<text x="{}" y="11" {AX}>tries (max {cmax:.0})</text>"#, ML + 4.0);
        let names: Vec<(&str, &str)> =
            r.durations.iter().enumerate().map(|(i, d)| (d.app.as_str(), COLORS[i % COLORS.len()])).collect();
        legend(&mut o, &names);
        svg_close(&mut o, at, "durations", &mut figures);
    }

    // Gantt chart.
    if !r.lanes.is_empty() {
        let _ = write!(
            o,
            "<h2>Workers over time</h2><p class=\"sub\">{} of {} worker slots shown{}; red: a failed try</p>",
            r.lanes.len(),
            r.lanes_total,
            if r.lanes.len() < r.lanes_total { " (sampled evenly)" } else { "" }
        );
        let lh = (300.0 / r.lanes.len() as f64).clamp(2.0, 14.0);
        let h = lh * r.lanes.len() as f64 + MB;
        let at = svg_open(&mut o, "workers over time", h);
        let span = (r.span_us.1 - r.span_us.0).max(1) as f64;
        for (i, lane) in r.lanes.iter().enumerate() {
            let y = lh * i as f64;
            if lh >= 9.0 {
                let _ = write!(
                    o,
                    r#"<text x="{}" y="{:.1}" {AX} text-anchor="end">{}</text>"#,
                    GL - 4.0,
                    y + lh - 2.0,
                    esc(&lane.name)
                );
            }
            for (a, b, ok) in &lane.spans {
                let x = GL + GW * (a - r.span_us.0) as f64 / span;
                let w = (GW * (b - a) as f64 / span).max(0.5);
                let fill = if *ok { COLORS[0] } else { COLORS[3] };
                let _ = write!(
                    o,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{fill}"/>"#,
                    (lh - 1.0).max(1.0)
                );
            }
        }
        for i in 0..=5 {
            let x = GL + GW * i as f64 / 5.0;
            let _ = write!(
                o,
                r#"<text x="{x}" y="{}" {AX} text-anchor="middle">{:.1} s</text>"#,
                h - 6.0,
                secs * i as f64 / 5.0
            );
        }
        svg_close(&mut o, at, "workers", &mut figures);
    }

    // Queue at the interchange.
    if r.queued.len() > 1 {
        let qmax = nice_max(r.queued.iter().map(|q| q.1 as f64).fold(0.0, f64::max));
        let at = frame(&mut o, "Tries queued at the interchange", qmax, "tries", secs, H * 0.7);
        let ph = H * 0.7 - MB - MT;
        let span = (r.span_us.1 - r.span_us.0).max(1) as f64;
        let pts: String = r
            .queued
            .iter()
            .map(|(t, q)| {
                format!(
                    "{:.1},{:.1} ",
                    ML + PW * ((t - r.span_us.0) as f64 / span).clamp(0.0, 1.0),
                    MT + ph - ph * *q as f64 / qmax
                )
            })
            .collect();
        let _ = write!(o, r#"<polyline points="{pts}" fill="none" stroke="{}" stroke-width="1.5"/>"#, COLORS[1]);
        svg_close(&mut o, at, "queued", &mut figures);
    }

    // Failures.
    o.push_str("<h2>Failures by reason</h2>");
    if r.failures.is_empty() {
        o.push_str("<p id=\"no-failures\">No try failed.</p>");
    } else {
        o.push_str(
            "<table class=\"failures\"><tr><th>reason</th><th>tries</th><th>examples (task, try, reason)</th></tr>",
        );
        for f in &r.failures {
            let ex: Vec<String> = f
                .examples
                .iter()
                .map(|(task, attempt, reason)| format!("{} (try {}): {}", esc(task), attempt + 1, esc(reason)))
                .collect();
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\" id=\"fail-{}\">{}</td><td>{}</td></tr>",
                esc(&f.kind),
                esc(&f.kind),
                f.count,
                ex.join("<br>")
            );
        }
        o.push_str("</table>");
    }
    o.push_str("<h2>Resource use of command tries, by app</h2>");
    if r.resources.is_empty() {
        o.push_str(
            "<p>No command try was measured (functions run inside their worker and are not told apart \
             from it).</p>",
        );
    } else {
        o.push_str(
            "<table class=\"resources\"><tr><th>app</th><th>tries</th><th>CPU time</th><th>cores busy \
             (CPU / run time)</th><th>largest resident set</th><th>mean largest resident set</th></tr>",
        );
        for u in &r.resources {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3} s</td><td class=\"n\">{:.2}</td>\
                 <td class=\"n\" id=\"rss-{}\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&u.app),
                u.tries,
                u.cpu_s,
                u.cores,
                esc(&u.app),
                human_kib(u.max_rss_kib),
                human_kib(u.mean_rss_kib)
            );
        }
        o.push_str(
            "</table><p class=\"sub\">As the kernel counted when each command was reaped (wait4): the command \
             and the descendants it waited for; the resident set is the largest of any one process.</p>",
        );
    }
    match &r.sampled {
        Some(sampled) => over_time(&mut o, sampled, secs, &mut figures),
        None => o.push_str(
            "<p class=\"sub\" id=\"no-samples\">No resource samples in this run (the launchers' \
             --resource-interval was 0, or the run was written by a strand before them).</p>",
        ),
    }
    o.push_str("</body></html>\n");
    Page { html: o, figures }
}

/// The resource samples' charts: the running tries' memory and cores, the nodes' load and memory.
fn over_time(o: &mut String, s: &Sampled, secs: f64, figures: &mut Vec<Figure>) {
    let h = H * 0.7;
    let rss_max = s.try_rss_kib.iter().copied().fold(0.0, f64::max);
    let (unit, per) = if rss_max >= 4.0 * 1024.0 * 1024.0 { ("GiB", 1024.0 * 1024.0) } else { ("MiB", 1024.0) };
    let rss: Vec<f64> = s.try_rss_kib.iter().map(|k| k / per).collect();
    let ymax = nice_max(rss_max / per);
    let at = frame(o, "Resident memory of running tries", ymax, unit, secs, h);
    line(o, &rss, ymax, COLORS[0], false, h);
    svg_close(o, at, "try-memory", figures);
    let _ = write!(
        o,
        "<p class=\"sub\" id=\"samples\">From {} samples of {} tries on {} nodes: each command or Python \
         try's process and its children, summed over the tries running; a try shorter than the sampling \
         interval may never be sampled (its largest resident set is in the table above).</p>",
        s.try_samples, s.tries, s.nodes
    );
    let ymax = nice_max(s.try_cores.iter().copied().fold(0.0, f64::max));
    let at = frame(o, "Cores kept busy by running tries", ymax, "cores", secs, h);
    line(o, &s.try_cores, ymax, COLORS[2], false, h);
    svg_close(o, at, "try-cores", figures);
    let top = s.load.iter().map(|l| l.1).chain(s.cpus.iter().copied()).fold(0.0, f64::max);
    let ymax = nice_max(top);
    let at = frame(o, "Node load (one-minute average)", ymax, "load", secs, h);
    let (mean, max): (Vec<f64>, Vec<f64>) = s.load.iter().copied().unzip();
    line(o, &mean, ymax, COLORS[0], false, h);
    line(o, &max, ymax, COLORS[3], false, h);
    line(o, &s.cpus, ymax, "#333", true, h);
    legend(o, &[("mean over nodes", COLORS[0]), ("busiest node", COLORS[3]), ("CPUs", "#333")]);
    svg_close(o, at, "node-load", figures);
    let at = frame(o, "Node memory in use", 1.0, "share of the node's memory", secs, h);
    let (mean, max): (Vec<f64>, Vec<f64>) = s.mem_used.iter().copied().unzip();
    line(o, &mean, 1.0, COLORS[0], false, h);
    line(o, &max, 1.0, COLORS[3], false, h);
    legend(o, &[("mean over nodes", COLORS[0]), ("fullest node", COLORS[3])]);
    svg_close(o, at, "node-memory", figures);
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:940px;color:#222}\
h1{margin-bottom:0}h2{margin-top:1.6em;font-size:1.1em}.sub{color:#666;margin-top:0}.cmd code{background:#f4f4f4;padding:2px 4px}\
.note{background:#fff4d6;padding:6px 10px;border-left:3px solid #e0a800}table{border-collapse:collapse}\
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}.summary td,.n{text-align:right}";
