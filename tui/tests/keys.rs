//! Update-logic tests: scripted key sequences drive the state machine
//! (no terminal) and the resulting state is asserted.

mod common;

use tally_tui::keymap::{BINDINGS, Key};
use tally_tui::state::{Detail, Mode, State, TableId, ViewId};
use tally_tui::update::{Effect, Msg, update};

fn press(state: &mut State, keys: &[Key]) -> Vec<Effect> {
    keys.iter()
        .flat_map(|key| update(state, Msg::Key(*key)))
        .collect()
}

fn typed(text: &str) -> Vec<Key> {
    text.chars().map(Key::Char).collect()
}

fn state() -> State {
    common::state_with_data(common::COLOUR, 1.0)
}

#[test]
fn tab_and_commands_switch_views() {
    let mut s = state();
    assert_eq!(s.view, ViewId::Overview);
    // Every switch asks the data task for the new view's endpoints.
    let effects = press(&mut s, &[Key::Tab, Key::Tab]);
    assert_eq!(s.view, ViewId::Workloads);
    assert_eq!(
        effects,
        vec![Effect::View(ViewId::Gpus), Effect::View(ViewId::Workloads)]
    );
    press(&mut s, &[Key::BackTab]);
    assert_eq!(s.view, ViewId::Gpus);
    press(&mut s, &[Key::Char(':')]);
    press(&mut s, &typed("models"));
    assert_eq!(
        s.mode,
        Mode::Command {
            input: "models".to_owned()
        }
    );
    press(&mut s, &[Key::Enter]);
    assert_eq!(s.view, ViewId::Models);
    assert_eq!(s.mode, Mode::Normal);
    press(&mut s, &[Key::Char(':')]);
    press(&mut s, &typed("nonsense"));
    press(&mut s, &[Key::Enter]);
    assert_eq!(s.view, ViewId::Models);
    assert!(s.message.as_deref().is_some_and(|m| m.contains("unknown")));
}

#[test]
fn q_in_a_filter_is_text_not_quit() {
    let mut s = state();
    press(&mut s, &typed(":workloads"));
    press(&mut s, &[Key::Enter, Key::Char('/')]);
    press(&mut s, &typed("qwen"));
    assert!(!s.quit);
    let table = s.table(TableId::View(ViewId::Workloads));
    assert!(!table.order.is_empty());
    assert!(table.order.len() < table.rows.len());
    for i in &table.order {
        assert!(table.rows[*i].cells.iter().any(|c| c.text.contains("qwen")));
    }
    // Enter keeps the filter; Esc then clears it.
    press(&mut s, &[Key::Enter]);
    assert_eq!(s.mode, Mode::Normal);
    let kept = s.table(TableId::View(ViewId::Workloads)).order.len();
    assert!(kept < s.table(TableId::View(ViewId::Workloads)).rows.len());
    press(&mut s, &[Key::Esc]);
    let table = s.table(TableId::View(ViewId::Workloads));
    assert_eq!(table.order.len(), table.rows.len());
    press(&mut s, &[Key::Char('q')]);
    assert!(s.quit);
}

#[test]
fn inverted_filters_exclude() {
    let mut s = state();
    press(&mut s, &typed(":workloads"));
    press(&mut s, &[Key::Enter, Key::Char('/')]);
    press(&mut s, &typed("!inference"));
    press(&mut s, &[Key::Enter]);
    let table = s.table(TableId::View(ViewId::Workloads));
    assert!(!table.order.is_empty());
    for i in &table.order {
        assert!(
            table.rows[*i]
                .cells
                .iter()
                .all(|c| !c.text.contains("inference"))
        );
    }
}

#[test]
fn sort_menu_picks_a_column_and_r_reverses() {
    let mut s = state();
    press(&mut s, &typed(":workloads"));
    press(&mut s, &[Key::Enter, Key::Char('s')]);
    assert!(matches!(s.mode, Mode::Sort { .. }));
    // Column 4 is CPU REQ, a figure: descending first.
    press(&mut s, &[Key::Char('4')]);
    let id = TableId::View(ViewId::Workloads);
    let table = s.table(id);
    let sort = table.sort.expect("sort");
    assert_eq!((sort.column, sort.descending), (3, true));
    let values: Vec<f64> = table
        .order
        .iter()
        .filter_map(|i| table.rows[*i].cells[3].value)
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    press(&mut s, &[Key::Char('r')]);
    let table = s.table(id);
    let values: Vec<f64> = table
        .order
        .iter()
        .filter_map(|i| table.rows[*i].cells[3].value)
        .collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    // The menu by cursor: down once from the current column, Enter.
    press(&mut s, &[Key::Char('s'), Key::Char('j'), Key::Enter]);
    assert_eq!(s.table(id).sort.map(|s| s.column), Some(4));
}

#[test]
fn movement_keys_stay_in_bounds() {
    let mut s = state();
    press(&mut s, &typed(":workloads"));
    press(&mut s, &[Key::Enter]);
    let id = TableId::View(ViewId::Workloads);
    let rows = s.table(id).order.len();
    press(&mut s, &[Key::Char('k'), Key::Up]);
    assert_eq!(s.table(id).selected, 0);
    press(&mut s, &[Key::Char('j'), Key::Down]);
    assert_eq!(s.table(id).selected, 2);
    press(&mut s, &[Key::Char('G')]);
    assert_eq!(s.table(id).selected, rows - 1);
    press(&mut s, &[Key::Char('j')]);
    assert_eq!(s.table(id).selected, rows - 1);
    press(&mut s, &[Key::Char('g')]);
    assert_eq!(s.table(id).selected, 0);
}

#[test]
fn enter_drills_down_and_esc_comes_back_with_the_selection_kept() {
    let mut s = state();
    press(&mut s, &typed(":recommendations"));
    press(&mut s, &[Key::Enter, Key::Char('j'), Key::Char('j')]);
    let id = TableId::View(ViewId::Recommendations);
    let chosen = s.table(id).selected_row().expect("row").key.clone();
    press(&mut s, &[Key::Enter]);
    assert_eq!(
        s.details.last(),
        Some(&Detail::Recommendation { id: chosen.clone() })
    );
    press(&mut s, &[Key::Esc]);
    assert!(s.details.is_empty());
    assert_eq!(
        s.table(id).selected_row().map(|r| r.key.clone()),
        Some(chosen)
    );

    // A workload asks for its history.
    press(&mut s, &typed(":workloads"));
    press(&mut s, &[Key::Enter]);
    let effects = press(&mut s, &[Key::Enter]);
    assert!(matches!(effects.as_slice(), [Effect::FetchHistory(_)]));
    assert!(matches!(s.details.last(), Some(Detail::Workload { .. })));

    // A GPU shows its processes, joined to pods.
    press(&mut s, &typed(":gpus"));
    press(&mut s, &[Key::Enter]);
    let with_pods = {
        let table = s.table(TableId::View(ViewId::Gpus));
        table
            .order
            .iter()
            .position(|i| table.rows[*i].cells[10].text != "(none)")
            .expect("a GPU with pods")
    };
    for _ in 0..with_pods {
        press(&mut s, &[Key::Char('j')]);
    }
    press(&mut s, &[Key::Enter]);
    assert!(matches!(
        s.details.last(),
        Some(Detail::GpuProcesses { .. })
    ));
    assert!(!s.table(TableId::GpuProcesses).rows.is_empty());
}

#[test]
fn freeze_holds_new_data_until_released() {
    let mut s = state();
    let before = s.data_at;
    press(&mut s, &[Key::Char('f')]);
    assert!(s.frozen);
    let mut newer = common::snapshot();
    newer.recommendations.items.truncate(1);
    update(
        &mut s,
        Msg::Data(Box::new(newer), before.unwrap_or(0.0) + 10.0),
    );
    assert_eq!(s.data_at, before);
    assert!(s.held_snapshot.is_some());
    assert!(s.table(TableId::OverviewTop).rows.len() > 1);
    press(&mut s, &[Key::Char('f')]);
    assert!(!s.frozen);
    assert_eq!(s.table(TableId::OverviewTop).rows.len(), 1);
}

#[test]
fn help_opens_and_any_key_closes_it() {
    let mut s = state();
    press(&mut s, &[Key::Char('?')]);
    assert_eq!(s.mode, Mode::Help);
    press(&mut s, &[Key::Char('q')]);
    assert_eq!(s.mode, Mode::Normal);
    assert!(!s.quit, "q closes help, it does not quit");
}

#[test]
fn the_help_lists_every_binding() {
    let s = state();
    let text: String = tally_tui::views::help::lines(&s)
        .iter()
        .map(|l| l.to_string() + "\n")
        .collect();
    for binding in BINDINGS {
        assert!(
            text.contains(binding.description),
            "{} missing from help",
            binding.description
        );
    }
}

#[test]
fn log_commands_filter_on_the_collector() {
    let mut s = state();
    let effects = {
        press(&mut s, &typed(":logs ns=web severity=error"));
        press(&mut s, &[Key::Enter])
    };
    assert_eq!(s.view, ViewId::Logs);
    assert_eq!(s.log_query.params["namespace"], "web");
    assert!(matches!(
        effects.as_slice(),
        [Effect::View(ViewId::Logs), Effect::Logs(_), Effect::Refresh]
    ));
    press(&mut s, &typed(":logs colour=red"));
    press(&mut s, &[Key::Enter]);
    assert!(s.message.is_some());
    // The tail follows the newest record.
    let table = s.table(TableId::View(ViewId::Logs));
    assert_eq!(table.selected + 1, table.order.len());
}

#[test]
fn ctrl_r_refreshes_and_ctrl_c_quits_from_anywhere() {
    let mut s = state();
    assert_eq!(press(&mut s, &[Key::Ctrl('r')]), vec![Effect::Refresh]);
    press(&mut s, &[Key::Char('?'), Key::Ctrl('c')]);
    assert!(s.quit);
}

#[test]
fn parts_rebuild_only_their_tables_and_freeze_holds_them() {
    use tally_tui::api::Part;
    let mut s = state();
    let before = s.table(TableId::View(ViewId::Workloads)).rows.len();
    let mut recommendations = common::snapshot().recommendations;
    recommendations.items.truncate(2);
    update(
        &mut s,
        Msg::Part(Box::new(Part::Recommendations(recommendations)), 1.0),
    );
    assert_eq!(s.table(TableId::OverviewTop).rows.len(), 2);
    assert_eq!(
        s.table(TableId::View(ViewId::Recommendations)).rows.len(),
        2
    );
    assert_eq!(s.table(TableId::View(ViewId::Workloads)).rows.len(), before);
    press(&mut s, &[Key::Char('f')]);
    let mut workloads = common::snapshot().workloads;
    workloads.workloads.truncate(3);
    update(&mut s, Msg::Part(Box::new(Part::Workloads(workloads)), 2.0));
    assert_eq!(s.table(TableId::View(ViewId::Workloads)).rows.len(), before);
    press(&mut s, &[Key::Char('f')]);
    assert_eq!(s.table(TableId::View(ViewId::Workloads)).rows.len(), 3);
    assert_eq!(s.data_at, Some(2.0));
}

/// The configuration example in docs/tui.md is a valid file and shows
/// the defaults, so the page cannot drift from the code.
#[test]
fn the_documented_config_example_is_valid_and_shows_the_defaults() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tui.md"))
        .expect("docs/tui.md");
    let start = page.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + page[start..].find("```").expect("its end");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("top.yaml");
    std::fs::write(&path, &page[start..end]).expect("write");
    let config = tally_tui::config::TopConfig::load(&path).expect("the example loads");
    let defaults = tally_tui::config::TopConfig {
        collector: config.collector.clone(),
        ..Default::default()
    };
    assert_eq!(config, defaults);
    assert_eq!(config.collector.as_deref(), Some("http://127.0.0.1:4318"));
}
