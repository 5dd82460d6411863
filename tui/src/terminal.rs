//! Terminal set-up and restoration on every exit path: normal return
//! (the guard's `Drop`), error (the same guard) and panic (a hook that
//! restores before the previous hook prints).

use std::io::IsTerminal;

use ratatui::DefaultTerminal;

use crate::error::TuiError;

/// Restores the terminal when dropped.
pub struct Guard {
    _private: (),
}

impl Drop for Guard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Raw mode, the alternate screen, and the panic hook.
pub fn init() -> Result<(DefaultTerminal, Guard), TuiError> {
    if !std::io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    // `try_init` installs a panic hook that restores the terminal and
    // then runs the previous hook, so the panic message stays readable.
    let terminal = ratatui::try_init()?;
    Ok((terminal, Guard { _private: () }))
}
