//! The `log` import: a plugin's messages go to the host's log, tagged with the plugin, within
//! a budget.

use super::*;

impl log::Host for StepState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.log_left == 0 {
            return Ok(());
        }
        let mut message = message;
        if message.len() > self.log_left {
            let mut cut = self.log_left;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" … [log budget used up; further messages dropped]");
        }
        self.log_left = self.log_left.saturating_sub(message.len());
        let plugin = self.plugin.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        if level == log::Level::Error {
            self.last_error_log = message;
        }
        Ok(())
    }
}
