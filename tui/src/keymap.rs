//! The one key table: it drives key handling, the footer hints and the
//! `?` help screen, so the three never disagree.

use std::fmt;

/// A key as the dashboard sees it (crossterm's events are mapped to this
/// so the state machine is testable without a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Char(' ') => write!(f, "space"),
            Key::Char(c) => write!(f, "{c}"),
            Key::Ctrl(c) => write!(f, "ctrl-{c}"),
            Key::Up => write!(f, "↑"),
            Key::Down => write!(f, "↓"),
            Key::Left => write!(f, "←"),
            Key::Right => write!(f, "→"),
            Key::PageUp => write!(f, "pgup"),
            Key::PageDown => write!(f, "pgdn"),
            Key::Home => write!(f, "home"),
            Key::End => write!(f, "end"),
            Key::Enter => write!(f, "enter"),
            Key::Esc => write!(f, "esc"),
            Key::Tab => write!(f, "tab"),
            Key::BackTab => write!(f, "shift-tab"),
            Key::Backspace => write!(f, "backspace"),
        }
    }
}

/// What a key does in normal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Filter,
    Command,
    SortMenu,
    Reverse,
    Freeze,
    NextView,
    PreviousView,
    Drill,
    Back,
    Refresh,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere.
    Global,
    /// Views with a table.
    Table,
}

impl Context {
    /// Its heading on the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "General",
            Context::Table => "Tables",
        }
    }
}

/// One row of the key table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    /// What the help screen says.
    pub description: &'static str,
    /// The footer's short word; bindings without one are only in help.
    pub hint: Option<&'static str>,
    pub context: Context,
}

/// Every binding, in help order. The dashboard is read-only by design:
/// no binding changes the cluster.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::Char('q'), Key::Ctrl('c')],
        action: Action::Quit,
        description: "quit",
        hint: Some("quit"),
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Char('?')],
        action: Action::Help,
        description: "this help",
        hint: Some("help"),
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Char(':')],
        action: Action::Command,
        description: "command: :gpus, :q…",
        hint: Some("view"),
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Tab],
        action: Action::NextView,
        description: "next view",
        hint: None,
        context: Context::Global,
    },
    Binding {
        keys: &[Key::BackTab],
        action: Action::PreviousView,
        description: "previous view",
        hint: None,
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Char('f')],
        action: Action::Freeze,
        description: "freeze (hold new data)",
        hint: Some("freeze"),
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Ctrl('r')],
        action: Action::Refresh,
        description: "refresh now",
        hint: None,
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Esc],
        action: Action::Back,
        description: "back, clear the filter",
        hint: Some("back"),
        context: Context::Global,
    },
    Binding {
        keys: &[Key::Char('j'), Key::Down],
        action: Action::Down,
        description: "down",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('k'), Key::Up],
        action: Action::Up,
        description: "up",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::PageDown, Key::Ctrl('d')],
        action: Action::PageDown,
        description: "page down",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::PageUp, Key::Ctrl('u')],
        action: Action::PageUp,
        description: "page up",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('g'), Key::Home],
        action: Action::Top,
        description: "first row",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('G'), Key::End],
        action: Action::Bottom,
        description: "last row",
        hint: None,
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Enter],
        action: Action::Drill,
        description: "open the row",
        hint: Some("open"),
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('/')],
        action: Action::Filter,
        description: "filter: regex, ! inverts",
        hint: Some("filter"),
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('s')],
        action: Action::SortMenu,
        description: "sort menu (1-9 pick)",
        hint: Some("sort"),
        context: Context::Table,
    },
    Binding {
        keys: &[Key::Char('r')],
        action: Action::Reverse,
        description: "reverse the sort",
        hint: None,
        context: Context::Table,
    },
];

/// The action bound to `key`, if any.
pub fn action(key: Key) -> Option<Action> {
    BINDINGS
        .iter()
        .find(|b| b.keys.contains(&key))
        .map(|b| b.action)
}

/// A binding's keys as help text: `j/↓`.
pub fn keys_text(binding: &Binding, unicode: bool) -> String {
    binding
        .keys
        .iter()
        .map(|k| {
            let text = k.to_string();
            if unicode {
                text
            } else {
                text.replace('↑', "up")
                    .replace('↓', "down")
                    .replace('←', "left")
                    .replace('→', "right")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen = std::collections::HashSet::new();
        for binding in BINDINGS {
            for key in binding.keys {
                assert!(seen.insert(*key), "{key} is bound twice");
            }
        }
    }

    #[test]
    fn lookup_follows_the_table() {
        assert_eq!(action(Key::Char('q')), Some(Action::Quit));
        assert_eq!(action(Key::Down), Some(Action::Down));
        assert_eq!(action(Key::Char('x')), None);
    }
}
