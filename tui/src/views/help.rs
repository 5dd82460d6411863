//! The `?` screen, generated from the key table, with the views and the
//! colour legend.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use crate::keymap::{self, Context};
use crate::state::{State, ViewId};
use crate::theme::Tone;

fn bindings(state: &State, context: Context) -> Vec<Line<'static>> {
    let p = &state.palette;
    let mut lines = vec![Line::from(Span::styled(
        context.title(),
        p.style(Tone::Accent),
    ))];
    for binding in keymap::BINDINGS.iter().filter(|b| b.context == context) {
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:<12}", keymap::keys_text(binding, p.unicode)),
                p.style(Tone::Accent),
            ),
            Span::raw(binding.description),
        ]));
    }
    lines
}

fn legend(state: &State) -> Vec<Line<'static>> {
    let p = &state.palette;
    let t = &state.thresholds;
    let views: Vec<&str> = ViewId::ALL.iter().map(|v| v.command()).collect();
    vec![
        Line::from(vec![
            Span::styled("Views ", p.style(Tone::Accent)),
            Span::raw(format!(":{}", views.join(" :"))),
        ]),
        Line::from(" :logs ns=web severity=error text=timeout filters on the collector"),
        Line::from(vec![
            Span::styled("Colours ", p.style(Tone::Accent)),
            Span::raw("GPU util "),
            Span::styled(
                format!("<{:.0}% idle", t.gpu_utilization.low * 100.0),
                p.style(Tone::Bad),
            ),
            Span::raw(" "),
            Span::styled(
                format!(">={:.0}% busy", t.gpu_utilization.high * 100.0),
                p.style(Tone::Good),
            ),
            Span::raw("; usage/request "),
            Span::styled(
                format!("<{:.0}%", t.efficiency.low * 100.0),
                p.style(Tone::Bad),
            ),
            Span::raw(" "),
            Span::styled(
                format!(">{:.0}%", t.efficiency.high * 100.0),
                p.style(Tone::Warn),
            ),
        ]),
        Line::from(vec![
            Span::raw(" $/month "),
            Span::styled(format!(">=${:.0}", t.monthly_cost.low), p.style(Tone::Warn)),
            Span::raw(" "),
            Span::styled(format!(">=${:.0}", t.monthly_cost.high), p.style(Tone::Bad)),
            Span::raw(" (tally top --config)"),
        ]),
        Line::from(Span::styled(
            "Read-only by design: no key changes the cluster.",
            p.style(Tone::Dim),
        )),
    ]
}

/// Every line of the help screen, in one column.
pub fn lines(state: &State) -> Vec<Line<'static>> {
    let mut lines = bindings(state, Context::Global);
    lines.extend(bindings(state, Context::Table));
    lines.extend(legend(state));
    lines
}

/// Draws the help over the view: two columns of keys, then the legend.
pub fn draw(state: &State, frame: &mut Frame) {
    let left = bindings(state, Context::Global);
    let right = bindings(state, Context::Table);
    let legend = legend(state);
    let keys_height = left.len().max(right.len()) as u16;
    let area = super::chrome::centred(frame.area(), 80, keys_height + legend.len() as u16 + 4);
    frame.render_widget(Clear, area);
    let block = super::block(state, " Help (any key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [keys, _, bottom] = Layout::vertical([
        Constraint::Length(keys_height),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(keys);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(Paragraph::new(right), right_area);
    frame.render_widget(
        Paragraph::new(legend).wrap(ratatui::widgets::Wrap { trim: false }),
        bottom,
    );
}
