//! The progress bar: shown only when asked for (the binary asks when stderr is a terminal),
//! otherwise every call does nothing.

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn new(show: bool, total: u64, what: &str) -> Self {
        Progress(show.then(|| {
            let bar = ProgressBar::new(total);
            let template = format!("{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {what} ({{per_sec}})");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }))
    }

    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
