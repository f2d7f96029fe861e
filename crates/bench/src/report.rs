//! The benchmark's output: one table of figures with their targets, and the machine it ran on.

use std::fmt::Write;

/// One measured figure.
pub struct Figure {
    pub name: String,
    pub value: String,
    pub target: Option<Target>,
}

/// A target a figure is held to: at most a bound.
pub struct Target {
    pub text: &'static str,
    pub met: bool,
}

impl Target {
    pub fn at_most(value: f64, bound: f64, text: &'static str) -> Self {
        Self { text, met: value <= bound }
    }
}

/// Every figure of a run.
#[derive(Default)]
pub struct Report {
    pub sections: Vec<(String, Vec<Figure>)>,
}

impl Report {
    pub fn section(&mut self, title: &str) -> &mut Vec<Figure> {
        self.sections.push((title.to_owned(), Vec::new()));
        &mut self.sections.last_mut().expect("just pushed").1
    }

    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.sections.iter().flat_map(|(_, figures)| figures)
    }

    /// The report as Markdown: the machine, then one table of every figure.
    pub fn to_markdown(&self, mode: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(out, "Produced by `make {mode}` on {}.\n", machine());
        let _ = writeln!(out, "| section | figure | value | target | met |\n|---|---|---|---|---|");
        for (title, figures) in &self.sections {
            for figure in figures {
                let (target, met) = match &figure.target {
                    Some(target) => (target.text, if target.met { "yes" } else { "**no**" }),
                    None => ("", ""),
                };
                let _ = writeln!(out, "| {title} | {} | {} | {target} | {met} |", figure.name, figure.value);
            }
        }
        out
    }
}

/// Cores and CPU model of this machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}, {}", std::env::consts::ARCH)
}

/// The `p`-th percentile (0 to 100) of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Formats microseconds as ms with two decimals.
pub fn ms(micros: f64) -> String {
    format!("{:.2} ms", micros / 1000.0)
}

/// Formats bytes as MB (10^6) with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A process's peak (`VmHWM`) or current (`VmRSS`) resident memory, in bytes.
pub fn resident(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used so far (user and system, every thread), in seconds.
///
/// `/proc/{pid}/stat` counts in USER_HZ ticks, which Linux fixes at 100 per second.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |n: usize| fields.get(n).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are the 14th and 15th fields; the 3rd (state) is the first after ')'.
    (ticks(11) + ticks(12)) as f64 / 100.0
}
