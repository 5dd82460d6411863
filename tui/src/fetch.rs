//! The data task: refreshes on a timer what the visible view needs, sends
//! each endpoint's answer as it arrives (the first screen does not wait
//! for the slowest), backs off while the collector is away, and serves
//! the drill-downs' requests. It talks to the UI only through messages.

use std::sync::mpsc::Sender;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

use crate::api::WorkloadRef;
use crate::client::{Client, Endpoint};
use crate::state::{LogQuery, ViewId};
use crate::update::{FetchError, Msg};

/// What the UI asks of the data task.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Refresh now (ctrl-r).
    Refresh,
    /// The visible view changed: read what it needs now.
    View(ViewId),
    /// A workload's history.
    History(WorkloadRef),
    /// New server-side log filters.
    Logs(LogQuery),
}

/// The longest wait between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before retry `attempt` (1, 2, 4 … seconds, at most 30).
pub fn backoff(attempt: u32) -> Duration {
    let seconds = 1u64 << attempt.saturating_sub(1).min(5);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// Unix seconds now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads `endpoints` concurrently, sending each answer as it arrives.
/// `Err(None)` when the UI is gone; `Err(Some(_))` with the first error.
async fn read(
    client: &Client,
    endpoints: &[Endpoint],
    logs: &LogQuery,
    ui: &Sender<Msg>,
) -> Result<(), Option<FetchError>> {
    let mut reads = JoinSet::new();
    for endpoint in endpoints {
        let (client, logs, endpoint) = (client.clone(), logs.clone(), *endpoint);
        reads.spawn(async move { client.part(endpoint, &logs).await });
    }
    let mut failure = None;
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(Ok(part)) => {
                if ui.send(Msg::Part(Box::new(part), unix_now())).is_err() {
                    return Err(None);
                }
            }
            Ok(Err(error)) => {
                failure.get_or_insert(error);
            }
            Err(join) => {
                failure.get_or_insert(FetchError::Unreachable(join.to_string()));
            }
        }
    }
    failure.map_or(Ok(()), |f| Err(Some(f)))
}

/// Runs until the UI goes away (its channel closes).
pub async fn run(
    client: Client,
    refresh: Duration,
    mut requests: UnboundedReceiver<Request>,
    ui: Sender<Msg>,
) {
    let mut logs = LogQuery::default();
    let mut view = ViewId::Overview;
    let mut attempt: u32 = 0;
    loop {
        // The cheap endpoints first (header, banners, the overview's
        // fleet line), then the view's.
        let mut result = read(&client, &Endpoint::ALWAYS, &logs, &ui).await;
        if result.is_ok() {
            result = read(&client, Endpoint::for_view(view), &logs, &ui).await;
        }
        let wait = match result {
            Ok(()) => {
                attempt = 0;
                if ui.send(Msg::Refreshed(unix_now())).is_err() {
                    return;
                }
                refresh
            }
            Err(None) => return,
            Err(Some(error)) => {
                attempt = attempt.saturating_add(1);
                let wait = match error {
                    // A wrong token stays wrong: no fast retries.
                    FetchError::Unauthorized(_) => MAX_BACKOFF,
                    FetchError::Unreachable(_) => backoff(attempt),
                };
                tracing::debug!(?error, attempt, "collector read failed");
                let failed = Msg::Failed {
                    error,
                    attempt,
                    retry_in_seconds: wait.as_secs_f64(),
                };
                if ui.send(failed).is_err() {
                    return;
                }
                wait
            }
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let request = tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                request = requests.recv() => request,
            };
            match request {
                None => return,
                Some(Request::Refresh) => break,
                Some(Request::View(next)) => {
                    let changed = next != view;
                    view = next;
                    if changed {
                        break;
                    }
                }
                Some(Request::Logs(query)) => logs = query,
                Some(Request::History(workload)) => match client.history(&workload).await {
                    Ok(history) => {
                        if ui.send(Msg::History(Box::new(history))).is_err() {
                            return;
                        }
                    }
                    Err(error) => tracing::debug!(?error, "history read failed"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(60), MAX_BACKOFF);
    }
}
