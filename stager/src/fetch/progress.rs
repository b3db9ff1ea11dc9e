//! Download progress: a bar on a terminal, plain log lines for journald or a fleet tool.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// Always a bar on stderr.
    Bar,
    /// `log::info!` lines every 5 % (or every 10 s when the size is unknown or slow).
    Lines,
    /// Nothing.
    Quiet,
}

const LINE_STEP_PERCENT: u64 = 5;
const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// One transfer's progress display.
pub struct Progress {
    label: String,
    total: Option<u64>,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines { last_step: Option<u64>, last_line: Instant },
    Quiet,
}

impl Progress {
    pub fn start(mode: ProgressMode, label: &str) -> Self {
        let use_bar = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Lines | ProgressMode::Quiet => false,
        };
        let display = if use_bar {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_owned());
            Display::Bar(bar)
        } else if mode == ProgressMode::Quiet {
            Display::Quiet
        } else {
            Display::Lines { last_step: None, last_line: Instant::now() }
        };
        Progress { label: label.to_owned(), total: None, display }
    }

    /// The full size, once a response tells it.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
        if let Display::Bar(bar) = &self.display {
            if let Some(total) = total {
                bar.set_length(total);
            } else {
                bar.unset_length();
            }
        }
    }

    /// Bytes of the file on disk so far (resumed prefix included).
    pub fn set_position(&mut self, done: u64) {
        match &mut self.display {
            Display::Bar(bar) => bar.set_position(done),
            Display::Lines { last_step, last_line } => {
                let step = self
                    .total
                    .filter(|total| *total > 0)
                    .map(|total| done.saturating_mul(100) / total / LINE_STEP_PERCENT);
                let new_step = step.is_some() && step != *last_step;
                if new_step || last_line.elapsed() >= LINE_INTERVAL {
                    *last_step = step;
                    *last_line = Instant::now();
                    log::info!("{}", line(&self.label, done, self.total));
                }
            }
            Display::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish();
        }
    }
}

fn line(label: &str, done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => {
            format!(
                "{label}: {} of {} ({}%)",
                BinaryBytes(done),
                BinaryBytes(total),
                done.saturating_mul(100) / total
            )
        }
        _ => format!("{label}: {}", BinaryBytes(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_percent_when_total_known() {
        assert_eq!(line("image", 512, Some(1024)), "image: 512 B of 1.00 KiB (50%)");
        assert_eq!(line("image", 512, None), "image: 512 B");
    }
}
